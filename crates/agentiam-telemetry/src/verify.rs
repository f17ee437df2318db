//! Reading a log back: offline verification for auditors, and recovery after a crash.

use crate::AuditError;
use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::merkle::{self, Hash};
use crate::record::{self, GENESIS, LineError};
use crate::store::SegmentStore;

/// What a verified log holds.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Number of records.
    pub records: u64,
    /// Number of segments.
    pub segments: usize,
    /// RFC 6962 root over all records.
    pub root: Hash,
    /// The checkpoint that was checked, if one was given.
    pub checkpoint: Option<Checkpoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Everything must be valid: what an auditor runs.
    Strict,
    /// The last segment may end in a torn write, which is cut off.
    Recover,
}

pub(crate) struct Scan {
    pub(crate) leaves: Vec<Hash>,
    pub(crate) last_hash: Hash,
    pub(crate) segments: Vec<u64>,
    /// Valid length of the last segment.
    pub(crate) last_len: u64,
}

fn io(e: std::io::Error) -> AuditError {
    AuditError::Io(e.to_string())
}

pub(crate) fn scan(store: &dyn SegmentStore, mode: Mode) -> Result<Scan, AuditError> {
    let segments = store.segments().map_err(io)?;
    let mut leaves: Vec<Hash> = Vec::new();
    let mut prev = GENESIS;
    let mut last_len = 0u64;
    for (i, &first) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let expected = leaves.len() as u64;
        if first != expected {
            return Err(AuditError::Tampered {
                seq: expected,
                reason: format!(
                    "segment {first} follows record {}",
                    expected.saturating_sub(1)
                ),
            });
        }
        let bytes = store.read(first).map_err(io)?;
        let mut offset = 0usize;
        let mut rest: &[u8] = &bytes;
        loop {
            if rest.is_empty() {
                break;
            }
            let seq = leaves.len() as u64;
            let (line, after, complete) = match rest.iter().position(|b| *b == b'\n') {
                Some(nl) => (
                    rest.get(..nl).unwrap_or_default(),
                    rest.get(nl + 1..).unwrap_or_default(),
                    true,
                ),
                None => (rest, &[][..], false),
            };
            let checked = if complete {
                record::decode(line).map_err(|LineError::Invalid(why)| why)
            } else {
                Err("partial record (no newline)".to_owned())
            };
            let failure = match checked {
                Ok(r) if r.seq != seq => Some(format!("record says seq {}, expected {seq}", r.seq)),
                Ok(r) if r.prev != prev => {
                    Some("prev does not match the previous record's hash".to_owned())
                }
                Ok(r) => {
                    prev = r.hash;
                    leaves.push(r.hash);
                    offset += line.len() + 1;
                    rest = after;
                    None
                }
                Err(why) => Some(why),
            };
            if let Some(why) = failure {
                if mode == Mode::Recover && is_last && torn_tail(rest) {
                    break;
                }
                return Err(if complete {
                    AuditError::Tampered { seq, reason: why }
                } else {
                    AuditError::Truncated { seq, reason: why }
                });
            }
        }
        if is_last {
            last_len = offset as u64;
        }
    }
    Ok(Scan {
        leaves,
        last_hash: prev,
        segments,
        last_len,
    })
}

/// Whether `rest` (from the first bad line to the end) is only a torn write: no complete line
/// in it is a valid record that would continue the log. Valid records after garbage mean
/// someone edited the middle of the log, which recovery must not paper over.
///
/// A zero byte marks space preallocated and never written (records hold none): a crash can
/// leave such a hole before pages written later, which were no more acknowledged than the
/// hole (a sync covers everything written before it), so a tail with a zero byte is torn too.
/// Cutting it loses nothing acknowledged and is no more than the truncation recovery already
/// accepts; a strict verification still refuses it.
fn torn_tail(rest: &[u8]) -> bool {
    !rest.is_empty()
        && (rest.contains(&0)
            || rest
                .split(|b| *b == b'\n')
                .skip(1)
                .all(|line| line.is_empty() || record::decode(line).is_err()))
}

/// Verifies a whole log, and a signed checkpoint against it when one is given.
///
/// Errors name the first bad sequence number: `audit.tampered` for a changed, inserted,
/// deleted or reordered record (or a history that no longer matches the checkpoint's root),
/// `audit.truncated` for a log shorter than its checkpoint or ending in a partial record,
/// `audit.bad_checkpoint` for a checkpoint that is malformed or not signed by the key.
pub fn verify_log(
    store: &dyn SegmentStore,
    checkpoint: Option<(&str, &NoteVerifier)>,
) -> Result<VerifyReport, AuditError> {
    let scan = scan(store, Mode::Strict)?;
    let records = scan.leaves.len() as u64;
    let checked = match checkpoint {
        None => None,
        Some((note, verifier)) => {
            let cp = verifier.verify(note)?;
            if cp.size > records {
                return Err(AuditError::Truncated {
                    seq: records,
                    reason: format!(
                        "the checkpoint covers {} records, the log has {records}",
                        cp.size
                    ),
                });
            }
            let size =
                usize::try_from(cp.size).map_err(|_| AuditError::BadCheckpoint("size".into()))?;
            let root = merkle::root(scan.leaves.get(..size).unwrap_or_default());
            if root != cp.root {
                return Err(AuditError::Tampered {
                    seq: 0,
                    reason: format!(
                        "records 0..{size} do not hash to the checkpoint's root: history was rewritten"
                    ),
                });
            }
            Some(cp)
        }
    };
    Ok(VerifyReport {
        records,
        segments: scan.segments.len(),
        root: merkle::root(&scan.leaves),
        checkpoint: checked,
    })
}
