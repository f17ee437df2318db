//! [`PostgresState`]: the shared state in PostgreSQL, for the workers and replicas of a service.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::Duration;

use crate::postgres_support::{connection_is_broken, quote_ident};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};

use crate::stored_taint::{StoredCounts, plan_merge};
use crate::{Counter, SharedState, StateError, TaskTaint, check_key};

/// The schema version this code writes (kept in `guard_state_version`); a newer one is refused.
const SCHEMA_VERSION: i32 = 1;

/// Serialises table creation between replicas starting at once (`"agntstat"` in ASCII; the
/// broker's store uses another).
const MIGRATION_LOCK: i64 = 0x6167_6e74_7374_6174;

/// How long a caller waits for the connection thread's answer before failing.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Used when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest schema name PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_SCHEMA_BYTES: usize = 63;

/// The tables, created if missing. Text compares byte-wise (`COLLATE "C"`), as in Rust, so
/// budgets are locked in the order the code sorts them. Names start with `guard_`, so the
/// schema can also hold other tables (e.g. the broker's).
const TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS guard_used_once (
    key TEXT COLLATE "C" PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS guard_used_once_by_expiry ON guard_used_once (expires_at);
CREATE TABLE IF NOT EXISTS guard_budgets (
    key TEXT COLLATE "C" PRIMARY KEY,
    spent BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS guard_budgets_by_expiry ON guard_budgets (expires_at);
CREATE TABLE IF NOT EXISTS guard_taint (
    task TEXT COLLATE "C" PRIMARY KEY,
    tainted BOOLEAN NOT NULL,
    overflowed BOOLEAN NOT NULL,
    sources BIGINT NOT NULL,
    fingerprints BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS guard_taint_by_expiry ON guard_taint (expires_at);
CREATE TABLE IF NOT EXISTS guard_taint_sources (
    task TEXT COLLATE "C" NOT NULL REFERENCES guard_taint (task) ON DELETE CASCADE,
    source TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (task, source)
);
CREATE TABLE IF NOT EXISTS guard_taint_fingerprints (
    task TEXT COLLATE "C" NOT NULL REFERENCES guard_taint (task) ON DELETE CASCADE,
    fingerprint BIGINT NOT NULL,
    PRIMARY KEY (task, fingerprint)
);
"#;

/// A new key is inserted, an expired entry is taken over, a live one is left alone (no row
/// changes). Concurrent callers on any replica serialise on the row; exactly one changes it.
const USE_ONCE: &str = "
INSERT INTO guard_used_once (key, expires_at) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
WHERE guard_used_once.expires_at < $3";

/// Locks the budgets (`$1`, sorted, no duplicates), creating missing ones as unspent with the
/// expiry `$2`, and returns them. Rows are inserted, hence locked, in the order given.
const LOCK_BUDGETS: &str = "
INSERT INTO guard_budgets (key, spent, expires_at)
SELECT k, 0, $2::bigint FROM unnest($1::text[]) WITH ORDINALITY AS u(k, i) ORDER BY i
ON CONFLICT (key) DO UPDATE SET spent = guard_budgets.spent
RETURNING key, spent, expires_at";

const WRITE_BUDGETS: &str = "
UPDATE guard_budgets AS b SET spent = u.spent, expires_at = u.expires_at
FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS u(key, spent, expires_at)
WHERE b.key = u.key";

const READ_TAINT: &str = "
SELECT t.tainted, t.overflowed,
       ARRAY(SELECT s.source FROM guard_taint_sources s WHERE s.task = t.task),
       ARRAY(SELECT f.fingerprint FROM guard_taint_fingerprints f WHERE f.task = t.task)
FROM guard_taint t WHERE t.task = $1 AND t.expires_at >= $2";

/// Locks the task's row, creating it empty with the expiry `$2` if missing, and returns it.
const LOCK_TAINT: &str = "
INSERT INTO guard_taint (task, tainted, overflowed, sources, fingerprints, expires_at)
VALUES ($1, FALSE, FALSE, 0, 0, $2)
ON CONFLICT (task) DO UPDATE SET expires_at = guard_taint.expires_at
RETURNING tainted, overflowed, sources, fingerprints, expires_at";

const CLEAR_SOURCES: &str = "DELETE FROM guard_taint_sources WHERE task = $1";
const CLEAR_FINGERPRINTS: &str = "DELETE FROM guard_taint_fingerprints WHERE task = $1";
const PRESENT_SOURCES: &str =
    "SELECT source FROM guard_taint_sources WHERE task = $1 AND source = ANY($2::text[])";
const PRESENT_FINGERPRINTS: &str = "SELECT fingerprint FROM guard_taint_fingerprints
     WHERE task = $1 AND fingerprint = ANY($2::bigint[])";
const ADD_SOURCES: &str =
    "INSERT INTO guard_taint_sources (task, source) SELECT $1, unnest($2::text[])";
const ADD_FINGERPRINTS: &str =
    "INSERT INTO guard_taint_fingerprints (task, fingerprint) SELECT $1, unnest($2::bigint[])";
const WRITE_TAINT: &str = "
UPDATE guard_taint
SET tainted = $2, overflowed = $3, sources = $4, fingerprints = $5, expires_at = $6
WHERE task = $1";

/// One statement: the three deletions are one transaction and one round trip. Sources and
/// fingerprints go with their task (ON DELETE CASCADE).
const PRUNE: &str = "
WITH u AS (DELETE FROM guard_used_once WHERE expires_at < $1 RETURNING 1),
     b AS (DELETE FROM guard_budgets WHERE expires_at < $1 RETURNING 1),
     t AS (DELETE FROM guard_taint WHERE expires_at < $1 RETURNING 1)
SELECT (SELECT count(*) FROM u) + (SELECT count(*) FROM b) + (SELECT count(*) FROM t)";

/// State every worker and replica of a guarded service shares, in a PostgreSQL database.
///
/// Every operation is atomic for everyone using the same database and schema:
///
/// - `use_once` is one statement, an insert that only overwrites an expired entry;
/// - `spend` and `extend_task_taint` are transactions that first lock (creating if missing)
///   the rows they decide on, with `INSERT ... ON CONFLICT ... DO UPDATE ... RETURNING`; a
///   concurrent caller waits for the lock and then sees the committed result. Budgets are
///   locked in key order, so two spends over the same budgets cannot deadlock;
/// - `task_taint` is one statement, which reads one snapshot.
///
/// The synchronous `postgres` client drives a runtime of its own, and that panics on a thread
/// that already runs an async runtime (a tower layer's, say). So, as the broker's
/// `PostgresStore` does, a [`PostgresState`] owns one thread that owns the connection; callers
/// send it a request and wait for the answer (up to 10 s). A connection that
/// turns out broken is replaced once and the request runs again; when the first run did
/// commit in the moment the connection broke, the second answers as a second caller would
/// (`use_once` says `false`, a spend counts twice): it errs toward refusing.
///
/// The connection is plaintext (`NoTls`): use it on loopback, a Unix socket or a private
/// network. PostgreSQL text cannot hold a NUL character: a key, task or taint source containing
/// one is refused with a [`StateError`].
///
/// ```no_run
/// use agentiam_state::{Counter, PostgresState, SharedState};
/// let state = PostgresState::connect("postgres://agentiam@db.internal/agentiam")?;
/// let now = 1_800_000_000;
/// assert!(state.use_once("approval:n-1", now + 60, now)?);
/// assert!(state.spend(&[Counter::new("budget:jti-1", 10)], now + 600, now)?);
///
/// // Several services (or test runs) can share a database, each in a schema of its own.
/// let url = "postgres://agentiam@db.internal/agentiam";
/// let other = PostgresState::connect_schema(url, "billing")?;
/// other.prune(now)?; // forgets what has expired
/// # Ok::<(), agentiam_state::StateError>(())
/// ```
#[derive(Debug)]
pub struct PostgresState {
    jobs: mpsc::Sender<Job>,
    schema: Option<String>,
}

/// A request for the connection thread: it runs the closure and answers on the closure's own
/// reply channel.
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

/// Why a request failed: the database said so, or the code refused what it found.
enum Failure {
    Pg(postgres::Error),
    Refused(String),
}

impl From<postgres::Error> for Failure {
    fn from(e: postgres::Error) -> Self {
        Self::Pg(e)
    }
}

/// The error as a [`StateError`]. A server error gives its severity, SQLSTATE and message but
/// not its DETAIL, which can quote row values; any other error gives its chain of causes
/// (`error connecting to server: Connection refused ...`).
fn pg_err(e: &postgres::Error) -> StateError {
    if let Some(db) = e.as_db_error() {
        return StateError(format!(
            "postgres: {} {}: {}",
            db.severity(),
            db.code().code(),
            db.message()
        ));
    }
    let mut text = format!("postgres: {e}");
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    StateError(text)
}

impl From<Failure> for StateError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Pg(e) => pg_err(&e),
            Failure::Refused(why) => StateError(format!("postgres: {why}")),
        }
    }
}

/// Refuses text PostgreSQL cannot store.
fn check_text(what: &str, text: &str) -> Result<(), StateError> {
    if text.contains('\0') {
        return Err(StateError(format!(
            "postgres: a {what} containing NUL cannot be stored"
        )));
    }
    Ok(())
}

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

/// One open connection and the statements prepared on it.
struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }

    /// The statements for `sqls`, prepared once per connection.
    fn statements<const N: usize>(
        &mut self,
        sqls: [&'static str; N],
    ) -> Result<[Statement; N], Failure> {
        let mut prepared = Vec::with_capacity(N);
        for sql in sqls {
            prepared.push(self.statement(sql)?);
        }
        prepared
            .try_into()
            .map_err(|_| Failure::Refused("prepared the wrong number of statements".into()))
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Failure> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, params)?)
    }

    /// Whether `e` means this connection is no longer usable.
    fn is_broken(&mut self, e: &postgres::Error) -> bool {
        connection_is_broken(&mut self.client, e)
    }
}

/// The state of the connection thread.
struct Worker {
    config: postgres::Config,
    schema: Option<String>,
    conn: Option<Conn>,
}

impl Worker {
    fn open(&self) -> Result<Conn, postgres::Error> {
        let mut client = self.config.connect(NoTls)?;
        if let Some(schema) = &self.schema {
            client.batch_execute(&format!("SET search_path TO {}", quote_ident(schema)))?;
        }
        Ok(Conn {
            client,
            statements: HashMap::new(),
        })
    }

    /// Runs `f` on the connection, opening it if needed. When the connection turns out broken
    /// it is replaced once and `f` runs again.
    fn run<T>(&mut self, f: &impl Fn(&mut Conn) -> Result<T, Failure>) -> Result<T, StateError> {
        let mut fresh = false;
        loop {
            let conn = match &mut self.conn {
                Some(conn) if !conn.client.is_closed() => conn,
                _ => {
                    self.conn = None;
                    let opened = self.open().map_err(|e| pg_err(&e))?;
                    fresh = true;
                    self.conn.insert(opened)
                }
            };
            match f(conn) {
                Ok(value) => return Ok(value),
                Err(Failure::Pg(e)) if conn.is_broken(&e) => {
                    self.conn = None;
                    if fresh {
                        return Err(pg_err(&e));
                    }
                }
                Err(failure) => return Err(failure.into()),
            }
        }
    }
}

/// The connection thread: runs requests one after another until the state is dropped.
fn work(mut worker: Worker, jobs: mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        // A panic inside the client library must not take the state down: the caller sees its
        // reply channel close (an error), and the next request gets a fresh connection.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut worker))).is_err() {
            worker.conn = None;
        }
    }
}

/// Creates the schema and tables if missing and records their version, refusing a newer one.
fn migrate(conn: &mut Conn, schema: Option<&str>) -> Result<(), Failure> {
    let mut tx = conn.client.transaction()?;
    // Held to the end of the transaction: replicas starting at once create tables one by one
    // (`CREATE ... IF NOT EXISTS` alone races on the catalog).
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    if let Some(schema) = schema {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ))?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS guard_state_version (
             singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
             version INTEGER NOT NULL
         )",
    )?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM guard_state_version", &[])?
        .map(|row| row.try_get(0))
        .transpose()?;
    if let Some(version) = found
        && version > SCHEMA_VERSION
    {
        return Err(Failure::Refused(format!(
            "the database has state schema version {version}; \
             this code knows up to {SCHEMA_VERSION}"
        )));
    }
    tx.batch_execute(TABLES)?;
    tx.execute(
        "INSERT INTO guard_state_version (singleton, version) VALUES (TRUE, $1)
         ON CONFLICT (singleton)
         DO UPDATE SET version = GREATEST(guard_state_version.version, excluded.version)",
        &[&SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(())
}

impl PostgresState {
    /// Connects to the database at `url` (`postgres://user@host:port/db?...` or
    /// `host=... user=...`) and creates the state's tables if they are missing, in the
    /// connection's default schema (usually `public`). A database written by a newer version
    /// of this code is refused. Fails (within the URL's `connect_timeout`, 5 s by default)
    /// when the server cannot be reached.
    pub fn connect(url: &str) -> Result<Self, StateError> {
        Self::start(url, None)
    }

    /// As [`PostgresState::connect`], with every table in the schema `schema` (created if
    /// missing; the connection's `search_path`): several services, or test runs, can share
    /// one database without seeing each other's state.
    pub fn connect_schema(url: &str, schema: &str) -> Result<Self, StateError> {
        if schema.is_empty() || schema.len() > MAX_SCHEMA_BYTES || schema.contains('\0') {
            return Err(StateError(format!(
                "postgres: a schema name must be 1 to {MAX_SCHEMA_BYTES} bytes, without NUL"
            )));
        }
        Self::start(url, Some(schema.to_owned()))
    }

    /// The schema this state's tables live in, when one was named.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Forgets every single-use marker, budget and taint that expired before `now`; returns
    /// how many entries (markers, budgets, tasks) it dropped. Nothing that is still live is
    /// touched, so any replica can run this at any time.
    pub fn prune(&self, now: i64) -> Result<u64, StateError> {
        let dropped = self.call(move |c| {
            let statement = c.statement(PRUNE)?;
            let row = c.client.query_one(&statement, &[&now])?;
            Ok(row.try_get::<_, i64>(0)?)
        })?;
        Ok(u64::try_from(dropped).unwrap_or(0))
    }

    fn start(url: &str, schema: Option<String>) -> Result<Self, StateError> {
        // The parse error does not quote the URL, so a password in it stays out of messages.
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| StateError(format!("postgres: invalid connection URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (jobs, incoming) = mpsc::channel::<Job>();
        let worker = Worker {
            config,
            schema: schema.clone(),
            conn: None,
        };
        std::thread::Builder::new()
            .name("agentiam-state-postgres".into())
            .spawn(move || work(worker, incoming))
            .map_err(|e| StateError(format!("postgres: cannot start its thread: {e}")))?;
        let state = Self { jobs, schema };
        let schema = state.schema.clone();
        state.call(move |c| migrate(c, schema.as_deref()))?;
        Ok(state)
    }

    /// Runs `f` on the connection thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Conn) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, StateError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |worker: &mut Worker| {
            // The caller may have given up waiting; then nobody needs the answer.
            let _ = reply.send(worker.run(&f));
        });
        self.jobs
            .send(job)
            .map_err(|_| StateError("postgres: the connection thread has stopped".into()))?;
        match answer.recv_timeout(CALL_TIMEOUT) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(StateError(format!(
                "postgres: no answer within {} s",
                CALL_TIMEOUT.as_secs()
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(StateError(
                "postgres: the request failed inside the client library".into(),
            )),
        }
    }
}

impl SharedState for PostgresState {
    fn use_once(&self, key: &str, expires_at: i64, now: i64) -> Result<bool, StateError> {
        check_key(key)?;
        check_text("key", key)?;
        let key = key.to_owned();
        self.call(move |c| {
            c.execute(USE_ONCE, &[&key, &expires_at, &now])
                .map(|changed| changed == 1)
        })
    }

    fn spend(&self, counters: &[Counter], expires_at: i64, now: i64) -> Result<bool, StateError> {
        for c in counters {
            check_key(&c.key)?;
            check_text("key", &c.key)?;
        }
        if counters.is_empty() {
            return Ok(true);
        }
        let counters = counters.to_vec();
        // Locked in one order by every caller: byte order, which `COLLATE "C"` shares.
        let keys: Vec<String> = counters
            .iter()
            .map(|c| c.key.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.call(move |c| {
            let [lock, write] = c.statements([LOCK_BUDGETS, WRITE_BUDGETS])?;
            let mut tx = c.client.transaction()?;
            let mut budgets = HashMap::with_capacity(keys.len());
            for row in tx.query(&lock, &[&keys, &expires_at])? {
                let key: String = row.try_get(0)?;
                budgets.insert(key, (row.try_get::<_, i64>(1)?, row.try_get::<_, i64>(2)?));
            }
            // The rows are locked; decide as the in-process state does, then write.
            let live = |budgets: &HashMap<String, (i64, i64)>, key: &str| match budgets.get(key) {
                Some(&(spent, until)) if until >= now => Ok(spent),
                Some(_) => Ok(0),
                None => Err(Failure::Refused(format!("budget {key:?} was not locked"))),
            };
            for counter in &counters {
                if reaches(live(&budgets, &counter.key)?, counter.limit) {
                    // Dropping the transaction rolls back the rows it created.
                    return Ok(false);
                }
            }
            for counter in &counters {
                let spent = live(&budgets, &counter.key)?
                    .checked_add(1)
                    .ok_or_else(|| Failure::Refused("budget count overflow".into()))?;
                if let Some(entry) = budgets.get_mut(&counter.key) {
                    *entry = (spent, entry.1.max(expires_at));
                }
            }
            let mut spent = Vec::with_capacity(keys.len());
            let mut until = Vec::with_capacity(keys.len());
            for key in &keys {
                let &(s, u) = budgets
                    .get(key)
                    .ok_or_else(|| Failure::Refused(format!("budget {key:?} was not locked")))?;
                spent.push(s);
                until.push(u);
            }
            tx.execute(&write, &[&keys, &spent, &until])?;
            tx.commit()?;
            Ok(true)
        })
    }

    fn task_taint(&self, task: &str, now: i64) -> Result<TaskTaint, StateError> {
        check_key(task)?;
        check_text("task", task)?;
        let task = task.to_owned();
        self.call(move |c| {
            let statement = c.statement(READ_TAINT)?;
            let Some(row) = c.client.query_opt(&statement, &[&task, &now])? else {
                return Ok(TaskTaint::default());
            };
            let sources: Vec<String> = row.try_get(2)?;
            let fingerprints: Vec<i64> = row.try_get(3)?;
            Ok(TaskTaint {
                sources: sources.into_iter().collect(),
                fingerprints: fingerprints.into_iter().map(i64::cast_unsigned).collect(),
                tainted: row.try_get(0)?,
                overflowed: row.try_get(1)?,
            })
        })
    }

    fn extend_task_taint(
        &self,
        task: &str,
        add: &TaskTaint,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StateError> {
        check_key(task)?;
        check_text("task", task)?;
        for source in &add.sources {
            check_text("taint source", source)?;
        }
        let task = task.to_owned();
        let add = add.clone();
        self.call(move |c| {
            let [
                lock,
                clear_sources,
                clear_fingerprints,
                present_sources,
                present_fingerprints,
                add_sources,
                add_fingerprints,
                write,
            ] = c.statements([
                LOCK_TAINT,
                CLEAR_SOURCES,
                CLEAR_FINGERPRINTS,
                PRESENT_SOURCES,
                PRESENT_FINGERPRINTS,
                ADD_SOURCES,
                ADD_FINGERPRINTS,
                WRITE_TAINT,
            ])?;
            let mut tx = c.client.transaction()?;
            let row = tx.query_one(&lock, &[&task, &expires_at])?;
            let until: i64 = row.try_get(4)?;
            let (stored, kept_until) = if until >= now {
                let stored = StoredCounts {
                    tainted: row.try_get(0)?,
                    overflowed: row.try_get(1)?,
                    sources: count(row.try_get(2)?, "source")?,
                    fingerprints: count(row.try_get(3)?, "fingerprint")?,
                };
                (stored, until.max(expires_at))
            } else {
                // Expired: the task starts again from nothing.
                tx.execute(&clear_sources, &[&task])?;
                tx.execute(&clear_fingerprints, &[&task])?;
                (StoredCounts::default(), expires_at)
            };
            let mut present_s = HashSet::new();
            if stored.sources > 0 && !add.sources.is_empty() {
                let offered: Vec<&str> = add.sources.iter().map(String::as_str).collect();
                for row in tx.query(&present_sources, &[&task, &offered])? {
                    present_s.insert(row.try_get::<_, String>(0)?);
                }
            }
            let mut present_f = HashSet::new();
            if stored.fingerprints > 0 && !add.fingerprints.is_empty() {
                let offered: Vec<i64> = add.fingerprints.iter().map(|f| f.cast_signed()).collect();
                for row in tx.query(&present_fingerprints, &[&task, &offered])? {
                    present_f.insert(row.try_get::<_, i64>(0)?.cast_unsigned());
                }
            }
            let plan = plan_merge(stored, &add, &present_s, &present_f);
            if !plan.new_sources.is_empty() {
                tx.execute(&add_sources, &[&task, &plan.new_sources])?;
            }
            if !plan.new_fingerprints.is_empty() {
                let new: Vec<i64> = plan
                    .new_fingerprints
                    .iter()
                    .map(|f| f.cast_signed())
                    .collect();
                tx.execute(&add_fingerprints, &[&task, &new])?;
            }
            tx.execute(
                &write,
                &[
                    &task,
                    &plan.counts.tainted,
                    &plan.counts.overflowed,
                    &to_i64(plan.counts.sources)?,
                    &to_i64(plan.counts.fingerprints)?,
                    &kept_until,
                ],
            )?;
            tx.commit()?;
            Ok(())
        })
    }
}
