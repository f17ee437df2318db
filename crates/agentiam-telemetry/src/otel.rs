//! OpenTelemetry spans (filled in by the OTel work).
