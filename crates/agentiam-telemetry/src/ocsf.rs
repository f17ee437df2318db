//! OCSF-shaped SIEM export (filled in by the OTel work).
