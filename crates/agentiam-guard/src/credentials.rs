//! Turning presented credentials into a [`Principal`]: a bearer token, a DPoP-bound token with
//! its proof, a token over mTLS, or an mTLS client certificate alone.
//!
//! The HTTP layer and the CLI both use [`Authenticator`], so the rules live in one place:
//!
//! - a DPoP-bound token needs its proof (`token.pop_required`), by the bound key (`token.pop_invalid`);
//! - a certificate-bound token (`cnf["x5t#S256"]`) needs the very certificate (`token.pop_invalid`),
//!   and without any client certificate it is refused (`token.pop_required`);
//! - a token presented over mTLS must name the certificate's SPIFFE ID as its presenter
//!   (`token.identity_mismatch`), so one agent's certificate cannot carry another agent's token;
//! - a certificate alone authenticates only SPIFFE IDs the service maps to scopes
//!   ([`Authenticator::with_workload`]); otherwise `guard.credentials_missing`.
//!
//! The certificate chain itself is checked by TLS (see the `mtls` feature); here the leaf's
//! SPIFFE ID (exactly one `spiffe://` URI SAN) and validity period are read.

use std::collections::HashMap;
use std::sync::Arc;

use agentiam_token::{CachingVerifier, DpopRequest, DpopVerifier, ScopeSet, TokenError};

use crate::codes;
use crate::decision::Denial;
use crate::request::Principal;

use crate::codes::PEER_CERTIFICATE_INVALID;

/// Verified token text and its principal, by signature.
type PrincipalCache = quick_cache::sync::Cache<Box<str>, (Arc<str>, Arc<Principal>)>;

/// Principals remembered per verified token.
const PRINCIPAL_CACHE_CAPACITY: usize = 10_000;

/// What a client presented with one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Presented<'a> {
    /// The access token (from `Authorization: Bearer` or `Authorization: DPoP`).
    pub token: Option<&'a str>,
    /// The `DPoP` header.
    pub dpop_proof: Option<&'a str>,
    /// The TLS client's leaf certificate (DER), already verified by the TLS stack.
    pub client_certificate: Option<&'a [u8]>,
    /// HTTP method (for DPoP `htm`).
    pub method: &'a str,
    /// Full request URL (for DPoP `htu`).
    pub url: &'a str,
}

/// A client whose certificate proved a SPIFFE ID: the only thing
/// [`Principal::from_workload`] takes, so a workload principal cannot come from an unchecked
/// string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedPeer {
    spiffe_id: String,
    not_after: i64,
}

impl VerifiedPeer {
    /// Reads a client's X.509-SVID (DER, its chain already verified by the TLS stack) at `now`:
    /// within its validity, exactly one URI SAN, and that a SPIFFE ID
    /// (`guard.peer_certificate_invalid` otherwise).
    pub fn from_certificate(der: &[u8], now: i64) -> Result<Self, Denial> {
        let (spiffe_id, not_after) = peer_spiffe_id(der, now)?;
        Ok(Self {
            spiffe_id,
            not_after,
        })
    }

    /// A peer something else already verified (your own TLS stack, a SPIFFE Workload API
    /// client, or a replay of a verified activity log): the SPIFFE ID it proved, and when that
    /// proof expires (seconds since the epoch). The ID must parse as a SPIFFE ID.
    ///
    /// ```
    /// use agentiam_guard::VerifiedPeer;
    /// let peer = VerifiedPeer::verified_elsewhere("spiffe://acme.example/agent/a", 1_800_000_000).unwrap();
    /// assert_eq!(peer.spiffe_id(), "spiffe://acme.example/agent/a");
    /// assert!(VerifiedPeer::verified_elsewhere("not a spiffe id", 0).is_err());
    /// ```
    pub fn verified_elsewhere(
        spiffe_id: &str,
        not_after: i64,
    ) -> Result<Self, agentiam_identity::IdentityError> {
        let id = agentiam_identity::parse_spiffe_id(spiffe_id)?;
        Ok(Self {
            spiffe_id: id.to_string(),
            not_after,
        })
    }

    /// The SPIFFE ID the peer proved.
    pub fn spiffe_id(&self) -> &str {
        &self.spiffe_id
    }

    /// When the proof expires (seconds since the epoch).
    pub fn not_after(&self) -> i64 {
        self.not_after
    }
}

/// The SPIFFE ID and `notAfter` (seconds since the epoch) of a client certificate.
fn peer_spiffe_id(der: &[u8], now: i64) -> Result<(String, i64), Denial> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let bad = |why: &str| Denial::new(PEER_CERTIFICATE_INVALID, why.to_owned());
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|_| bad("client certificate does not parse"))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes after the client certificate"));
    }
    let validity = cert.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    if now < not_before || now > not_after {
        return Err(bad("client certificate is outside its validity period"));
    }
    let san = cert
        .subject_alternative_name()
        .map_err(|_| bad("client certificate has a malformed subjectAltName"))?
        .ok_or_else(|| bad("client certificate has no subjectAltName"))?;
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    let [uri] = uris.as_slice() else {
        return Err(bad("an SVID carries exactly one URI SAN"));
    };
    let id = agentiam_identity::parse_spiffe_id(uri)
        .map_err(|_| bad("the URI SAN is not a SPIFFE ID"))?;
    Ok((id.to_string(), not_after))
}

fn token_denial(e: &TokenError) -> Denial {
    Denial::new(e.code(), e.to_string())
}

/// Verifies presented credentials.
#[derive(Debug, Clone)]
pub struct Authenticator {
    verifier: CachingVerifier,
    dpop: DpopVerifier,
    workloads: HashMap<String, ScopeSet>,
    /// Principals of verified tokens, by signature; only consulted after the token verified
    /// again (cache hit in the verifier re-checks expiry and revocation).
    principals: Arc<PrincipalCache>,
}

impl Authenticator {
    /// Tokens through `verifier` (cached), DPoP proofs through `dpop`.
    pub fn new(verifier: CachingVerifier, dpop: DpopVerifier) -> Self {
        Self {
            verifier,
            dpop,
            workloads: HashMap::new(),
            principals: Arc::new(quick_cache::sync::Cache::new(PRINCIPAL_CACHE_CAPACITY)),
        }
    }

    /// Lets a workload with this SPIFFE ID call with its client certificate alone, with these scopes.
    pub fn with_workload(mut self, spiffe_id: impl Into<String>, scopes: ScopeSet) -> Self {
        self.workloads.insert(spiffe_id.into(), scopes);
        self
    }

    /// The token verifier.
    pub fn verifier(&self) -> &CachingVerifier {
        &self.verifier
    }

    /// The principal the credentials prove, or why not (a `token.*` or `guard.*` code).
    pub fn authenticate(&self, presented: &Presented<'_>) -> Result<Arc<Principal>, Denial> {
        let now = self.verifier.verifier().clock().now();
        let peer = presented
            .client_certificate
            .map(|der| VerifiedPeer::from_certificate(der, now).map(|peer| (der, peer)))
            .transpose()?;
        let Some(token) = presented.token else {
            return match peer {
                Some((_, peer)) => match self.workloads.get(peer.spiffe_id()) {
                    Some(scopes) => Ok(Arc::new(Principal::from_workload(&peer, scopes.clone()))),
                    None => Err(Denial::new(
                        codes::CREDENTIALS_MISSING,
                        "no token, and the client certificate's SPIFFE ID is not mapped to scopes",
                    )),
                },
                None => Err(Denial::new(
                    codes::CREDENTIALS_MISSING,
                    "no credentials presented",
                )),
            };
        };
        let verified = match (&peer, presented.dpop_proof) {
            (Some((der, _)), None) => self
                .verifier
                .verifier()
                .verify_with_client_cert(token, der)
                .map_err(|e| token_denial(&e))?,
            (_, Some(proof)) => self
                .verifier
                .verifier()
                .verify_with_dpop(
                    token,
                    Some(proof),
                    &DpopRequest {
                        method: presented.method,
                        url: presented.url,
                    },
                    &self.dpop,
                )
                .map_err(|e| token_denial(&e))?,
            // Bearer: the cache refuses sender-constrained tokens (token.pop_required), like the verifier.
            (None, None) => self.verifier.verify(token).map_err(|e| token_denial(&e))?,
        };
        // Over mTLS, the certificate names who is calling: one agent's certificate cannot carry another's token.
        if let Some((_, peer)) = &peer
            && verified.claims().presenter() != peer.spiffe_id()
        {
            return Err(Denial::new(
                agentiam_token::codes::IDENTITY_MISMATCH,
                "the token was issued to another agent than the client certificate names",
            ));
        }
        Ok(self.principal_of(&verified))
    }

    fn principal_of(&self, token: &agentiam_token::Token) -> Arc<Principal> {
        let raw = token.as_str();
        let Some((_, sig)) = raw.rsplit_once('.') else {
            return Arc::new(Principal::from_token(token));
        };
        if let Some((cached, principal)) = self.principals.get(sig)
            && *cached == *raw
        {
            return principal;
        }
        let principal = Arc::new(Principal::from_token(token));
        self.principals
            .insert(Box::from(sig), (Arc::from(raw), principal.clone()));
        principal
    }
}
