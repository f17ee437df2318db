//! The agent activity log for agentiam.
//!
//! Every decision becomes an [`AuditEvent`]: who acted (SPIFFE ID and composite digest, on
//! whose behalf, through which delegation chain), what it was asked, which tool it called with
//! which arguments (hashed always, values redacted by policy), what data it touched, what was
//! decided and why. Events are appended to a tamper-evident log of JSON Lines segments with a
//! hash chain and an RFC 6962 Merkle tree, sealed by signed checkpoints in the C2SP
//! tlog-checkpoint format, and verifiable offline with `agentiam audit verify`.
//!
//! This crate is a leaf: decisions write to it and never read from it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod canonical;
mod checkpoint;
pub mod codes;
mod error;
mod event;
mod handoff;
mod log;
pub mod merkle;
pub mod ocsf;
pub mod otel;
mod record;
mod store;
mod verify;

pub use checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
pub use error::AuditError;
pub use event::{
    AgentRef, AnomalyRecord, AuditEvent, ContentRef, Decision, EVENT_SCHEMA_VERSION, IntentRecord,
    Outcome, REDACTED, RedactionPolicy, ToolCall, sha256_hex,
};
pub use log::{AuditLog, Durability, LogConfig, Receipt};
pub use record::{GENESIS, Record};
pub use store::{
    FileStore, MAX_PREALLOCATION, MemStore, SegmentStore, StoreOp, segment_file_name,
    without_unwritten_tail,
};
pub use verify::{VerifyReport, verify_log};
