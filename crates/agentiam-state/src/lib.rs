//! State every worker of an agentiam-guarded service shares.
//!
//! Some guarantees are about *counts*, and a count kept in one object of one process is not a
//! guarantee once the service runs several workers, processes or replicas:
//!
//! - an approval is accepted **once** (its nonce), a DPoP proof is accepted **once** (its `jti`);
//! - a delegated token's call **budget** lets exactly that many calls through, and so does every
//!   ancestor's budget in its chain;
//! - a task that read untrusted content stays **tainted** for the token's life, in every
//!   session, guard and worker, with the fingerprints of what it read.
//!
//! [`SharedState`] is the one small trait that holds this state, with atomic operations only.
//! [`InProcessState`] is the default (one process). The `sqlite`, `postgres` and `redis`
//! features add backends that several processes share:
//!
//! - `SqliteState` (`sqlite`): the processes of one machine, through one file (WAL,
//!   `BEGIN IMMEDIATE` transactions);
//! - `PostgresState` (`postgres`): every worker and replica using one database (single
//!   statements, or transactions that lock the rows they decide on);
//! - `RedisState` (`redis`): every worker and replica using one Redis server (one Lua script
//!   per operation).
//!
//! Every backend answers exactly as [`InProcessState`] does, the caps of [`TaskTaint::merge`]
//! included: one conformance suite (`tests/common`) runs against each, with workers racing on
//! connections of their own. Each also has a `prune(now)` that drops expired entries.
//!
//! Every failure of a backend is a [`StateError`] (`guard.state_unavailable`), and the guard
//! denies the call: state that cannot be read or written never lets a call through.
//!
//! ```
//! use agentiam_state::{Counter, InProcessState, SharedState, TaskTaint};
//! let state = InProcessState::default();
//! let now = 1_800_000_000;
//! assert!(state.use_once("approval:n-1", now + 60, now).unwrap());
//! assert!(!state.use_once("approval:n-1", now + 60, now).unwrap());
//!
//! let budget = [Counter::new("budget:jti-child", 2), Counter::new("budget:jti-parent", 10)];
//! assert!(state.spend(&budget, now + 600, now).unwrap());
//! assert!(state.spend(&budget, now + 600, now).unwrap());
//! assert!(!state.spend(&budget, now + 600, now).unwrap(), "the child's budget of 2 is spent");
//!
//! let mut read = TaskTaint::default();
//! read.add_source("web_fetch");
//! state.extend_task_taint("task-7", &read, now + 600, now).unwrap();
//! assert!(state.task_taint("task-7", now).unwrap().is_tainted());
//! ```

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Mutex;

#[cfg(feature = "postgres")]
mod postgres_state;
#[cfg(feature = "postgres")]
pub mod postgres_support;
#[cfg(feature = "redis")]
mod redis_state;
#[cfg(feature = "sqlite")]
mod sqlite_state;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod stored_taint;

pub mod codes;

#[cfg(feature = "postgres")]
pub use postgres_state::PostgresState;
#[cfg(feature = "redis")]
pub use redis_state::RedisState;
#[cfg(feature = "sqlite")]
pub use sqlite_state::SqliteState;

/// Most taint sources one task keeps; more still leave it tainted.
pub const MAX_TAINT_SOURCES: usize = 64;
/// Most untrusted-text fingerprints one task keeps; past it the task is marked
/// [`TaskTaint::overflowed`] and every argument counts as possibly copied (fail closed).
pub const MAX_TASK_FINGERPRINTS: usize = 1 << 16;
/// Longest key accepted (a nonce, a `jti`, a task id with its prefix).
pub const MAX_KEY_LEN: usize = 512;

/// The shared state could not be read or written; the guard denies the call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shared guard state unavailable: {0}")]
pub struct StateError(pub String);

impl StateError {
    /// The stable reason code: `guard.state_unavailable`.
    pub fn code(&self) -> &'static str {
        codes::STATE_UNAVAILABLE
    }
}

impl agentiam_codes::ReasonCode for StateError {
    fn code(&self) -> &str {
        StateError::code(self)
    }
}

/// One call budget: a counter and how many calls it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// Names the budget, e.g. `budget:<jti>`.
    pub key: String,
    /// How many calls it allows in all.
    pub limit: u64,
}

impl Counter {
    /// A budget of `limit` calls under `key`.
    pub fn new(key: impl Into<String>, limit: u64) -> Self {
        Self {
            key: key.into(),
            limit,
        }
    }
}

/// What a task has read from outside its trust boundary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskTaint {
    /// Where the taint came from (tool names, document ids), at most [`MAX_TAINT_SOURCES`].
    pub sources: BTreeSet<String>,
    /// Fingerprints of the untrusted text read (see the guard's `UntrustedText`).
    pub fingerprints: BTreeSet<u64>,
    /// Tainted by something not named in `sources` (the list was full, or taint was set without
    /// a source).
    pub tainted: bool,
    /// More fingerprints were offered than [`MAX_TASK_FINGERPRINTS`]: the set is incomplete, so
    /// every argument must be treated as possibly copied from untrusted text.
    pub overflowed: bool,
}

impl TaskTaint {
    /// Whether the task has read anything untrusted.
    pub fn is_tainted(&self) -> bool {
        self.tainted || !self.sources.is_empty() || !self.fingerprints.is_empty() || self.overflowed
    }

    /// Adds a source; past [`MAX_TAINT_SOURCES`] the task stays tainted without naming it.
    pub fn add_source(&mut self, source: impl Into<String>) {
        if self.sources.len() < MAX_TAINT_SOURCES {
            self.sources.insert(source.into());
        } else {
            self.tainted = true;
        }
    }

    /// Adds fingerprints; past [`MAX_TASK_FINGERPRINTS`] the set is marked overflowed.
    pub fn add_fingerprints(&mut self, fingerprints: impl IntoIterator<Item = u64>) {
        for f in fingerprints {
            if self.fingerprints.len() >= MAX_TASK_FINGERPRINTS {
                self.overflowed = true;
                return;
            }
            self.fingerprints.insert(f);
        }
    }

    /// Everything in `other` added to this (a union, with the same caps).
    pub fn merge(&mut self, other: &TaskTaint) {
        for s in &other.sources {
            self.add_source(s.clone());
        }
        self.add_fingerprints(other.fingerprints.iter().copied());
        self.tainted |= other.tainted;
        self.overflowed |= other.overflowed;
    }
}

/// State every worker of a guarded service shares. Every operation is atomic across all users
/// of the same backend; an `Err` means "unknown", and callers deny.
pub trait SharedState: Send + Sync + fmt::Debug {
    /// Marks `key` used until `expires_at` (seconds since the epoch).
    /// `Ok(true)` the first time, `Ok(false)` every later time until it expires.
    fn use_once(&self, key: &str, expires_at: i64, now: i64) -> Result<bool, StateError>;

    /// Counts one call against every counter, all or none: `Ok(true)` when each counter was
    /// below its limit (each is now one higher), `Ok(false)` when any was spent (none changed).
    /// A counter is kept until at least `expires_at`.
    fn spend(&self, counters: &[Counter], expires_at: i64, now: i64) -> Result<bool, StateError>;

    /// What the task has read from outside its trust boundary (empty when nothing, or expired).
    fn task_taint(&self, task: &str, now: i64) -> Result<TaskTaint, StateError>;

    /// Adds `add` to the task's taint (a union), kept until at least `expires_at`.
    fn extend_task_taint(
        &self,
        task: &str,
        add: &TaskTaint,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StateError>;
}

/// Refuses keys no backend should store (empty or longer than [`MAX_KEY_LEN`]).
pub fn check_key(key: &str) -> Result<(), StateError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StateError(format!(
            "key of {} bytes (1 ..= {MAX_KEY_LEN})",
            key.len()
        )));
    }
    Ok(())
}

/// The default: state in this process, bounded. When it holds `capacity` unexpired entries of a
/// kind it refuses new ones (fail closed) rather than forgetting used ones.
#[derive(Debug)]
pub struct InProcessState {
    inner: Mutex<Tables>,
    capacity: usize,
    /// Set once any task's taint is recorded (never cleared): until then every task is clean,
    /// and a decision reads that without taking the lock.
    any_taint: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Tables {
    used: HashMap<String, i64>,
    counters: HashMap<String, (u64, i64)>,
    taint: HashMap<String, (TaskTaint, i64)>,
}

impl InProcessState {
    /// Holds up to `capacity` unexpired entries of each kind.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Tables::default()),
            capacity: capacity.max(1),
            any_taint: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn tables(&self) -> Result<std::sync::MutexGuard<'_, Tables>, StateError> {
        self.inner
            .lock()
            .map_err(|_| StateError("in-process state poisoned".into()))
    }
}

impl Default for InProcessState {
    fn default() -> Self {
        Self::new(100_000)
    }
}

/// Makes room for `extra` new entries by dropping expired ones; errs when still full.
fn room<V>(
    map: &mut HashMap<String, V>,
    extra: usize,
    capacity: usize,
    expiry: impl Fn(&V) -> i64,
    now: i64,
    what: &str,
) -> Result<(), StateError> {
    if map.len() + extra > capacity {
        map.retain(|_, v| expiry(v) >= now);
        if map.len() + extra > capacity {
            return Err(StateError(format!("{what} table is full")));
        }
    }
    Ok(())
}

impl SharedState for InProcessState {
    fn use_once(&self, key: &str, expires_at: i64, now: i64) -> Result<bool, StateError> {
        check_key(key)?;
        let mut t = self.tables()?;
        match t.used.get(key) {
            Some(exp) if *exp >= now => return Ok(false),
            _ => {}
        }
        room(&mut t.used, 1, self.capacity, |e| *e, now, "single-use")?;
        t.used.insert(key.to_owned(), expires_at);
        Ok(true)
    }

    fn spend(&self, counters: &[Counter], expires_at: i64, now: i64) -> Result<bool, StateError> {
        for c in counters {
            check_key(&c.key)?;
        }
        let mut t = self.tables()?;
        let spent = |t: &Tables, c: &Counter| {
            t.counters
                .get(&c.key)
                .filter(|(_, exp)| *exp >= now)
                .map_or(0, |(n, _)| *n)
        };
        if counters.iter().any(|c| spent(&t, c) >= c.limit) {
            return Ok(false);
        }
        room(
            &mut t.counters,
            counters.len(),
            self.capacity,
            |(_, e)| *e,
            now,
            "budget",
        )?;
        for c in counters {
            let n = spent(&t, c);
            let exp = t
                .counters
                .get(&c.key)
                .map_or(expires_at, |(_, e)| (*e).max(expires_at));
            t.counters.insert(c.key.clone(), (n + 1, exp));
        }
        Ok(true)
    }

    fn task_taint(&self, task: &str, now: i64) -> Result<TaskTaint, StateError> {
        check_key(task)?;
        // Acquire pairs with the Release in extend_task_taint: once a reader sees the flag it
        // takes the lock and sees the entry.
        if !self.any_taint.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(TaskTaint::default());
        }
        let t = self.tables()?;
        Ok(t.taint
            .get(task)
            .filter(|(_, exp)| *exp >= now)
            .map(|(taint, _)| taint.clone())
            .unwrap_or_default())
    }

    fn extend_task_taint(
        &self,
        task: &str,
        add: &TaskTaint,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StateError> {
        check_key(task)?;
        let mut t = self.tables()?;
        // Set under the lock, before the entry exists: a reader that still sees `false` was
        // ordered before this write, as it would be with the lock.
        self.any_taint
            .store(true, std::sync::atomic::Ordering::Release);
        if !t.taint.contains_key(task) {
            room(&mut t.taint, 1, self.capacity, |(_, e)| *e, now, "taint")?;
        }
        let entry = t
            .taint
            .entry(task.to_owned())
            .or_insert_with(|| (TaskTaint::default(), expires_at));
        if entry.1 < now {
            *entry = (TaskTaint::default(), expires_at);
        }
        entry.0.merge(add);
        entry.1 = entry.1.max(expires_at);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test")]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_refuses_rather_than_forgets() {
        let s = InProcessState::new(2);
        assert!(s.use_once("a", 100, 0).unwrap());
        assert!(s.use_once("b", 100, 0).unwrap());
        assert_eq!(
            s.use_once("c", 100, 0).unwrap_err().code(),
            "guard.state_unavailable"
        );
        assert!(!s.use_once("a", 100, 0).unwrap(), "a is still used");
        // Once a and b expire there is room again.
        assert!(s.use_once("c", 300, 200).unwrap());
    }

    #[test]
    fn a_spent_counter_changes_no_other() {
        let s = InProcessState::default();
        let child = Counter::new("child", 1);
        let parent = Counter::new("parent", 3);
        assert!(s.spend(&[child.clone(), parent.clone()], 100, 0).unwrap());
        assert!(!s.spend(&[child, parent.clone()], 100, 0).unwrap());
        // The refused spend did not count against the parent: two more fit.
        assert!(s.spend(std::slice::from_ref(&parent), 100, 0).unwrap());
        assert!(s.spend(std::slice::from_ref(&parent), 100, 0).unwrap());
        assert!(!s.spend(&[parent], 100, 0).unwrap());
    }

    #[test]
    fn bad_keys_are_errors() {
        let s = InProcessState::default();
        assert!(s.use_once("", 1, 0).is_err());
        assert!(s.use_once(&"k".repeat(MAX_KEY_LEN + 1), 1, 0).is_err());
        assert!(s.task_taint("", 0).is_err());
    }

    #[test]
    fn taint_caps_fail_closed() {
        let mut t = TaskTaint::default();
        for i in 0..MAX_TAINT_SOURCES + 5 {
            t.add_source(format!("s{i}"));
        }
        assert_eq!(t.sources.len(), MAX_TAINT_SOURCES);
        assert!(t.tainted);
        t.add_fingerprints(0..(MAX_TASK_FINGERPRINTS as u64 + 1));
        assert!(t.overflowed);
        assert!(t.is_tainted());
    }
}
