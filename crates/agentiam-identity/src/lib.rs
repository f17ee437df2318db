//! Composite agent identity for agentiam.
//!
//! An agent is more than an API key: it is a SPIFFE ID plus the model that drives it,
//! the system prompt and tool manifest that configure it, and the runtime it runs in.
//! [`AgentIdentity`] hashes all of these into one composite digest, so a change to any
//! component is a different identity. This crate also holds the keys that sign tokens
//! ([`SigningKey`], [`KeySet`], [`Jwks`]) and a local CA for X.509-SVIDs ([`SvidAuthority`]).
//!
//! It reads no clock and, apart from [`UnixProcessAttestor`] reading `/proc`, performs no I/O:
//! callers pass the time in.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod agent;
mod attest;
pub mod codes;
mod digest;
mod error;
mod keys;
mod svid;

pub use agent::{
    AgentConfiguration, AgentIdentity, ModelRef, RuntimeDescriptor, ToolDescriptor,
    parse_spiffe_id, parse_trust_domain,
};
pub use agentiam_codes::ReasonCode;
pub use attest::{AttestedClaims, Attestor, ConfigurationAttestor, UnixProcessAttestor};
pub use digest::Sha256Digest;
pub use error::{IdentityError, clip_for_message};
pub use keys::{Algorithm, Jwk, Jwks, KeySet, PublicKey, SigningKey};
pub use spiffe::{SpiffeId, TrustDomain};
pub use svid::{SvidAuthority, X509Svid};
