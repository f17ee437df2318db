//! X.509-SVIDs: a local certificate authority for one trust domain that issues
//! short-lived leaf certificates carrying exactly one SPIFFE URI SAN, for mTLS.
//!
//! This follows the X509-SVID profile of the SPIFFE specification: the leaf is not a CA,
//! has exactly one URI SAN (the SPIFFE ID) and the `digitalSignature` key usage; the CA
//! carries the trust domain's URI and may only sign certificates.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use spiffe::{SpiffeId, TrustDomain};
use zeroize::Zeroizing;

use crate::IdentityError;

fn cert_err(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Certificate(e.to_string())
}

fn time_at(unix: i64) -> Result<time::OffsetDateTime, IdentityError> {
    time::OffsetDateTime::from_unix_timestamp(unix).map_err(cert_err)
}

/// A certificate authority for one SPIFFE trust domain.
pub struct SvidAuthority {
    trust_domain: TrustDomain,
    issuer: Issuer<'static, KeyPair>,
    ca_cert_pem: String,
    ca_cert_der: Vec<u8>,
    serial: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for SvidAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SvidAuthority")
            .field("trust_domain", &self.trust_domain.to_string())
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A leaf X.509-SVID and its private key.
pub struct X509Svid {
    /// The SPIFFE ID in the certificate's single URI SAN.
    pub spiffe_id: SpiffeId,
    /// The leaf certificate, DER.
    pub cert_der: Vec<u8>,
    /// The leaf certificate, PEM.
    pub cert_pem: String,
    /// Expiry, seconds since the Unix epoch.
    pub not_after: i64,
    key_pem: Zeroizing<String>,
}

impl std::fmt::Debug for X509Svid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509Svid")
            .field("spiffe_id", &self.spiffe_id.to_string())
            .field("not_after", &self.not_after)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl X509Svid {
    /// The leaf's private key as PKCS#8 PEM (zeroized on drop).
    pub fn private_key_pem(&self) -> &str {
        &self.key_pem
    }
}

impl SvidAuthority {
    /// Creates a new P-256 CA for `trust_domain`, valid from `now` for `lifetime` seconds.
    pub fn generate(
        trust_domain: TrustDomain,
        now: i64,
        lifetime: i64,
    ) -> Result<Self, IdentityError> {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "agentiam");
        params
            .distinguished_name
            .push(DnType::CommonName, format!("agentiam CA {trust_domain}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let td_uri = format!("spiffe://{trust_domain}");
        params.subject_alt_names = vec![SanType::URI(td_uri.try_into().map_err(cert_err)?)];
        params.not_before = time_at(now.saturating_sub(60))?;
        params.not_after = time_at(now.saturating_add(lifetime))?;
        let cert = params.self_signed(&key).map_err(cert_err)?;
        Ok(Self {
            trust_domain,
            ca_cert_pem: cert.pem(),
            ca_cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
            serial: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// The CA certificate (the trust bundle), PEM.
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The CA certificate, DER.
    pub fn ca_cert_der(&self) -> &[u8] {
        &self.ca_cert_der
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// Issues a leaf SVID for `spiffe_id`, valid from `now` for `ttl` seconds, with a fresh P-256 key.
    ///
    /// Refuses a SPIFFE ID outside this CA's trust domain (`identity.certificate`).
    pub fn issue(
        &self,
        spiffe_id: &SpiffeId,
        now: i64,
        ttl: i64,
    ) -> Result<X509Svid, IdentityError> {
        if !spiffe_id.is_member_of(&self.trust_domain) {
            return Err(IdentityError::Certificate(format!(
                "{spiffe_id} is not in trust domain {}",
                self.trust_domain
            )));
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(cert_err)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "agentiam");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.subject_alt_names = vec![SanType::URI(
            spiffe_id.to_string().try_into().map_err(cert_err)?,
        )];
        let serial = self
            .serial
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        params.serial_number = Some(SerialNumber::from_slice(&serial.to_be_bytes()));
        params.not_before = time_at(now.saturating_sub(5))?;
        let not_after = now.saturating_add(ttl);
        params.not_after = time_at(not_after)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(cert_err)?;
        Ok(X509Svid {
            spiffe_id: spiffe_id.clone(),
            cert_der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            not_after,
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::*;

    #[test]
    fn leaf_has_exactly_one_spiffe_uri_san_and_chains_to_the_ca() {
        let now = 1_800_000_000;
        let td = crate::parse_trust_domain("acme.example").unwrap();
        let ca = SvidAuthority::generate(td, now, 86_400).unwrap();
        let id = crate::parse_spiffe_id("spiffe://acme.example/agent/billing").unwrap();
        let svid = ca.issue(&id, now, 300).unwrap();

        let (_, leaf) = X509Certificate::from_der(&svid.cert_der).unwrap();
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        let uris: Vec<_> = san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::URI(u) => Some(*u),
                _ => None,
            })
            .collect();
        assert_eq!(uris, vec!["spiffe://acme.example/agent/billing"]);
        assert_eq!(san.value.general_names.len(), 1);
        assert!(!leaf.is_ca());
        assert_eq!(leaf.validity().not_after.timestamp(), now + 300);

        let (_, ca_cert) = X509Certificate::from_der(ca.ca_cert_der()).unwrap();
        assert!(ca_cert.is_ca());
        assert_eq!(leaf.issuer(), ca_cert.subject());
        assert!(svid.private_key_pem().contains("PRIVATE KEY"));
        assert!(!format!("{svid:?}").contains("PRIVATE"));
    }

    #[test]
    fn refuses_foreign_trust_domain() {
        let td = crate::parse_trust_domain("acme.example").unwrap();
        let ca = SvidAuthority::generate(td, 0, 86_400).unwrap();
        let foreign = crate::parse_spiffe_id("spiffe://evil.example/agent").unwrap();
        assert_eq!(
            ca.issue(&foreign, 0, 300).unwrap_err().code(),
            "identity.certificate"
        );
    }
}
