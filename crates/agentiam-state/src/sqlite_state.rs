//! [`SqliteState`]: the shared state in one SQLite file, for the workers of one machine.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};

use crate::stored_taint::{StoredCounts, plan_merge};
use crate::{Counter, SharedState, StateError, TaskTaint, check_key};

/// The schema version this code writes (kept in `guard_state_version`); a newer one is refused.
const SCHEMA_VERSION: i64 = 1;

/// How long a writer waits for another process's write transaction before it fails.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Tables of the shared state, created if missing. Their names start with `guard_`, so the file
/// can also hold other tables (e.g. the broker's) without a clash.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS guard_used_once (
    key TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS guard_used_once_by_expiry ON guard_used_once (expires_at);
CREATE TABLE IF NOT EXISTS guard_budgets (
    key TEXT PRIMARY KEY,
    spent INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS guard_budgets_by_expiry ON guard_budgets (expires_at);
CREATE TABLE IF NOT EXISTS guard_taint (
    task TEXT PRIMARY KEY,
    tainted INTEGER NOT NULL,
    overflowed INTEGER NOT NULL,
    sources INTEGER NOT NULL,
    fingerprints INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS guard_taint_by_expiry ON guard_taint (expires_at);
CREATE TABLE IF NOT EXISTS guard_taint_sources (
    task TEXT NOT NULL REFERENCES guard_taint (task) ON DELETE CASCADE,
    source TEXT NOT NULL,
    PRIMARY KEY (task, source)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS guard_taint_fingerprints (
    task TEXT NOT NULL REFERENCES guard_taint (task) ON DELETE CASCADE,
    fingerprint INTEGER NOT NULL,
    PRIMARY KEY (task, fingerprint)
) WITHOUT ROWID;
";

/// A new key is inserted, an expired entry is taken over, a live one is left alone (no row
/// changes, so the caller learns it was used).
const USE_ONCE: &str = "
INSERT INTO guard_used_once (key, expires_at) VALUES (?1, ?2)
ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
WHERE guard_used_once.expires_at < ?3";

/// What a budget has spent, when it has not expired.
const LIVE_SPENT: &str = "SELECT spent FROM guard_budgets WHERE key = ?1 AND expires_at >= ?2";

/// One more call against a budget; an expired budget starts again from one. The expiry only
/// ever grows.
const COUNT_ONE: &str = "
INSERT INTO guard_budgets (key, spent, expires_at) VALUES (?1, 1, ?2)
ON CONFLICT (key) DO UPDATE SET
    spent = CASE WHEN guard_budgets.expires_at >= ?3 THEN guard_budgets.spent + 1 ELSE 1 END,
    expires_at = MAX(guard_budgets.expires_at, excluded.expires_at)";

/// State every worker of a guarded service shares, in one SQLite file, for the processes of one
/// machine.
///
/// Every process that opens the same file shares the state. The file is in WAL mode, so readers
/// never wait for the writer. Every operation that writes is one `BEGIN IMMEDIATE`
/// transaction: it takes the file's write lock *before* it reads, so the check (is this nonce
/// used? is any budget spent?) and the write that depends on it see no other writer in
/// between, in this process or another. A writer that finds the lock taken waits up to
/// 5 s and then fails (the guard denies).
///
/// The connection lives behind a mutex: calls from several threads of one process take turns.
/// Open one [`SqliteState`] per process, not one per call.
///
/// The file stays in SQLite's default `synchronous = FULL`: a committed single-use marker
/// survives a power cut, so a replay after a crash is still refused.
///
/// ```
/// use agentiam_state::{Counter, SharedState, SqliteState};
/// let dir = tempfile::tempdir()?;
/// let state = SqliteState::open(dir.path().join("guard-state.db"))?;
/// let now = 1_800_000_000;
/// assert!(state.use_once("approval:n-1", now + 60, now)?);
/// assert!(!state.use_once("approval:n-1", now + 60, now)?);
///
/// // Another process opening the same file sees the same state.
/// let other = SqliteState::open(dir.path().join("guard-state.db"))?;
/// assert!(!other.use_once("approval:n-1", now + 60, now)?);
///
/// assert!(state.spend(&[Counter::new("budget:jti-1", 1)], now + 600, now)?);
/// assert!(!other.spend(&[Counter::new("budget:jti-1", 1)], now + 600, now)?);
///
/// state.prune(now + 3600)?; // forgets what has expired
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteState {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl fmt::Debug for SqliteState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteState")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Why an operation failed: SQLite said so, or the code refused what it found.
enum Failure {
    Sqlite(rusqlite::Error),
    Refused(String),
}

impl From<rusqlite::Error> for Failure {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

impl From<Failure> for StateError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Sqlite(e) => StateError(format!("sqlite: {e}")),
            Failure::Refused(why) => StateError(format!("sqlite: {why}")),
        }
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

/// Runs `f` again while the file is busy, up to [`BUSY_TIMEOUT`]. For the few statements at
/// open that SQLite does not retry itself (switching the journal mode).
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        match f() {
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

/// A count kept in a table, as a `usize`.
fn count(n: i64, what: &str) -> Result<usize, Failure> {
    usize::try_from(n).map_err(|_| Failure::Refused(format!("stored {what} count {n}")))
}

fn to_i64(n: usize) -> Result<i64, Failure> {
    i64::try_from(n).map_err(|_| Failure::Refused(format!("count {n} out of range")))
}

/// Whether a budget that has spent `spent` calls allows no more under `limit`. A negative count
/// (never written by this code) counts as spent; the stored count cannot pass `i64::MAX`.
fn reaches(spent: i64, limit: u64) -> bool {
    u64::try_from(spent).map_or(true, |s| s >= limit.min(i64::MAX.cast_unsigned()))
}

/// Creates the tables if missing and records the schema version, refusing a newer one.
fn migrate(conn: &mut Connection) -> Result<(), Failure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS guard_state_version (
             singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
             version INTEGER NOT NULL
         )",
    )?;
    let found: Option<i64> = tx
        .query_row("SELECT version FROM guard_state_version", [], |r| r.get(0))
        .optional()?;
    if let Some(version) = found
        && version > SCHEMA_VERSION
    {
        return Err(Failure::Refused(format!(
            "the file has state schema version {version}; this code knows up to {SCHEMA_VERSION}"
        )));
    }
    tx.execute_batch(TABLES)?;
    tx.execute(
        "INSERT INTO guard_state_version (singleton, version) VALUES (1, ?1)
         ON CONFLICT (singleton) DO UPDATE SET version = MAX(version, excluded.version)",
        [SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(())
}

impl SqliteState {
    /// Opens (creating if missing) the SQLite file at `path`, switches it to WAL and creates the
    /// state's tables if they are missing. Every process that opens the same file shares the
    /// state. A file written by a newer version of this code is refused.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StateError> {
        let path = path.as_ref().to_path_buf();
        let opened = || -> Result<Connection, Failure> {
            let mut conn = Connection::open(&path)?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            // WAL persists in the file; switching to it needs a moment alone with the file,
            // which SQLite does not wait for by itself when several processes start at once.
            let _mode: String = retry_busy(|| {
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            })?;
            conn.pragma_update(None, "foreign_keys", true)?;
            migrate(&mut conn)?;
            Ok(conn)
        };
        let conn = opened().map_err(|f| {
            let StateError(why) = StateError::from(f);
            StateError(format!("{why} (opening {})", path.display()))
        })?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The file this state lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Forgets every single-use marker, budget and taint that expired before `now`; returns
    /// how many entries it dropped. Nothing that is still live is touched, so this can run at
    /// any time, from any process.
    pub fn prune(&self, now: i64) -> Result<u64, StateError> {
        self.write(|tx| {
            let mut dropped = 0;
            for table in [
                "DELETE FROM guard_used_once WHERE expires_at < ?1",
                "DELETE FROM guard_budgets WHERE expires_at < ?1",
                // Sources and fingerprints go with their task (ON DELETE CASCADE).
                "DELETE FROM guard_taint WHERE expires_at < ?1",
            ] {
                dropped += tx.prepare_cached(table)?.execute([now])? as u64;
            }
            Ok(dropped)
        })
    }

    fn conn(&self) -> Result<MutexGuard<'_, Connection>, StateError> {
        self.conn
            .lock()
            .map_err(|_| StateError("sqlite: connection lock poisoned".into()))
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction and commits what it wrote.
    fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, Failure>,
    ) -> Result<T, StateError> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Failure::from)?;
        let value = f(&tx)?;
        tx.commit().map_err(Failure::from)?;
        Ok(value)
    }
}

/// Which of `items` the task already holds, found with `sql` (`?1` the task, `?2` an item).
fn present<T: rusqlite::ToSql + Clone + Eq + std::hash::Hash>(
    tx: &Transaction<'_>,
    sql: &str,
    task: &str,
    items: impl IntoIterator<Item = T>,
) -> Result<HashSet<T>, Failure> {
    let mut stmt = tx.prepare_cached(sql)?;
    let mut found = HashSet::new();
    for item in items {
        if stmt.exists(params![task, item])? {
            found.insert(item);
        }
    }
    Ok(found)
}

impl SharedState for SqliteState {
    fn use_once(&self, key: &str, expires_at: i64, now: i64) -> Result<bool, StateError> {
        check_key(key)?;
        self.write(|tx| {
            let changed = tx
                .prepare_cached(USE_ONCE)?
                .execute(params![key, expires_at, now])?;
            Ok(changed == 1)
        })
    }

    fn spend(&self, counters: &[Counter], expires_at: i64, now: i64) -> Result<bool, StateError> {
        for c in counters {
            check_key(&c.key)?;
        }
        if counters.is_empty() {
            return Ok(true);
        }
        self.write(|tx| {
            // Every check before any write: all or none.
            let mut live = tx.prepare_cached(LIVE_SPENT)?;
            for c in counters {
                let spent: Option<i64> = live
                    .query_row(params![c.key, now], |r| r.get(0))
                    .optional()?;
                if reaches(spent.unwrap_or(0), c.limit) {
                    return Ok(false);
                }
            }
            let mut count_one = tx.prepare_cached(COUNT_ONE)?;
            for c in counters {
                count_one.execute(params![c.key, expires_at, now])?;
            }
            Ok(true)
        })
    }

    fn task_taint(&self, task: &str, now: i64) -> Result<TaskTaint, StateError> {
        check_key(task)?;
        let mut conn = self.conn()?;
        // A read transaction: the three reads see one snapshot of the file.
        let tx = conn.transaction().map_err(Failure::from)?;
        let read = || -> Result<TaskTaint, Failure> {
            let flags: Option<(bool, bool)> = tx
                .prepare_cached(
                    "SELECT tainted, overflowed FROM guard_taint
                     WHERE task = ?1 AND expires_at >= ?2",
                )?
                .query_row(params![task, now], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((tainted, overflowed)) = flags else {
                return Ok(TaskTaint::default());
            };
            let sources = tx
                .prepare_cached("SELECT source FROM guard_taint_sources WHERE task = ?1")?
                .query_map([task], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<BTreeSet<String>>>()?;
            let fingerprints = tx
                .prepare_cached("SELECT fingerprint FROM guard_taint_fingerprints WHERE task = ?1")?
                .query_map([task], |r| r.get::<_, i64>(0).map(i64::cast_unsigned))?
                .collect::<rusqlite::Result<BTreeSet<u64>>>()?;
            Ok(TaskTaint {
                sources,
                fingerprints,
                tainted,
                overflowed,
            })
        };
        let taint = read()?;
        tx.finish().map_err(Failure::from)?;
        Ok(taint)
    }

    fn extend_task_taint(
        &self,
        task: &str,
        add: &TaskTaint,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StateError> {
        check_key(task)?;
        self.write(|tx| {
            let row: Option<(bool, bool, i64, i64, i64)> = tx
                .prepare_cached(
                    "SELECT tainted, overflowed, sources, fingerprints, expires_at
                     FROM guard_taint WHERE task = ?1",
                )?
                .query_row([task], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .optional()?;
            let (stored, kept_until) = match row {
                Some((tainted, overflowed, sources, fingerprints, until)) if until >= now => (
                    StoredCounts {
                        sources: count(sources, "source")?,
                        fingerprints: count(fingerprints, "fingerprint")?,
                        tainted,
                        overflowed,
                    },
                    until.max(expires_at),
                ),
                // Expired: the task starts again from nothing.
                Some(_) => {
                    tx.prepare_cached("DELETE FROM guard_taint_sources WHERE task = ?1")?
                        .execute([task])?;
                    tx.prepare_cached("DELETE FROM guard_taint_fingerprints WHERE task = ?1")?
                        .execute([task])?;
                    (StoredCounts::default(), expires_at)
                }
                None => (StoredCounts::default(), expires_at),
            };
            let present_sources = if stored.sources == 0 {
                HashSet::new()
            } else {
                present(
                    tx,
                    "SELECT 1 FROM guard_taint_sources WHERE task = ?1 AND source = ?2",
                    task,
                    add.sources.iter().cloned(),
                )?
            };
            let present_fingerprints = if stored.fingerprints == 0 {
                HashSet::new()
            } else {
                present(
                    tx,
                    "SELECT 1 FROM guard_taint_fingerprints WHERE task = ?1 AND fingerprint = ?2",
                    task,
                    add.fingerprints.iter().map(|f| f.cast_signed()),
                )?
                .into_iter()
                .map(i64::cast_unsigned)
                .collect()
            };
            let plan = plan_merge(stored, add, &present_sources, &present_fingerprints);
            // The task's row first: sources and fingerprints reference it.
            tx.prepare_cached(
                "INSERT INTO guard_taint
                     (task, tainted, overflowed, sources, fingerprints, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (task) DO UPDATE SET
                     tainted = excluded.tainted,
                     overflowed = excluded.overflowed,
                     sources = excluded.sources,
                     fingerprints = excluded.fingerprints,
                     expires_at = excluded.expires_at",
            )?
            .execute(params![
                task,
                plan.counts.tainted,
                plan.counts.overflowed,
                to_i64(plan.counts.sources)?,
                to_i64(plan.counts.fingerprints)?,
                kept_until
            ])?;
            let mut insert_source = tx
                .prepare_cached("INSERT INTO guard_taint_sources (task, source) VALUES (?1, ?2)")?;
            for source in &plan.new_sources {
                insert_source.execute(params![task, source])?;
            }
            let mut insert_fingerprint = tx.prepare_cached(
                "INSERT INTO guard_taint_fingerprints (task, fingerprint) VALUES (?1, ?2)",
            )?;
            for f in &plan.new_fingerprints {
                insert_fingerprint.execute(params![task, f.cast_signed()])?;
            }
            Ok(())
        })
    }
}
