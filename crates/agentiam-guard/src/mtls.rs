//! mTLS for guarded services: a rustls server configuration that requires a client certificate
//! chaining to the trust bundle, and the peer certificate handed to the guard.
//!
//! rustls checks the chain, validity and key usage ([`rustls::server::WebPkiClientVerifier`]);
//! it does not read SPIFFE IDs. The guard does ([`crate::VerifiedPeer::from_certificate`]): exactly one
//! `spiffe://` URI SAN, which must be the agent of a token presented over the connection.
//!
//! ```
//! use agentiam_identity::{SvidAuthority, parse_spiffe_id, parse_trust_domain};
//! let now = 1_800_000_000;
//! let ca = SvidAuthority::generate(parse_trust_domain("example.org").unwrap(), now, 86_400).unwrap();
//! let server = ca.issue(&parse_spiffe_id("spiffe://example.org/service/ledger").unwrap(), now, 3_600).unwrap();
//! let config = agentiam_guard::mtls::server_config(
//!     vec![server.cert_der.clone()],
//!     server.private_key_pem().as_bytes(),
//!     &[ca.ca_cert_der().to_vec()],
//! )
//! .unwrap();
//! assert_eq!(config.alpn_protocols.len(), 0);
//! ```

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MtlsError(String);

impl MtlsError {
    /// The stable reason code.
    pub fn code(&self) -> &'static str {
        crate::codes::TLS_CONFIG_INVALID
    }
}

impl agentiam_codes::ReasonCode for MtlsError {
    fn code(&self) -> &str {
        MtlsError::code(self)
    }
}

/// A server configuration (TLS 1.2 and 1.3 on aws-lc-rs) that requires client certificates
/// chaining to `trust_bundle` (DER CA certificates). `key_pem` is the server's PKCS#8 key in PEM.
pub fn server_config(
    cert_chain: Vec<Vec<u8>>,
    key_pem: &[u8],
    trust_bundle: &[Vec<u8>],
) -> Result<ServerConfig, MtlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in trust_bundle {
        roots
            .add(CertificateDer::from(ca.clone()))
            .map_err(|e| MtlsError(format!("trust bundle: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| MtlsError(format!("client verifier: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| MtlsError(format!("server key: {e}")))?;
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MtlsError(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            cert_chain.into_iter().map(CertificateDer::from).collect(),
            key,
        )
        .map_err(|e| MtlsError(format!("server certificate: {e}")))
}

/// The verified client leaf certificate of a finished handshake, for the request extensions.
#[cfg(feature = "tower")]
pub fn peer_certificate(
    connection: &rustls::ServerConnection,
) -> Option<crate::http::PeerCertificate> {
    connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| crate::http::PeerCertificate::new(leaf.as_ref().to_vec()))
}
