//! [`PostgresStore`]: the broker's state in PostgreSQL, shared by several broker replicas.
//!
//! The trait's methods are synchronous and are called from inside the broker's async
//! handlers. The synchronous `postgres` client drives its own runtime and must not run on a
//! tokio worker thread, so a [`PostgresStore`] owns one dedicated thread that owns the
//! connection; callers send it a request over a channel and wait for the answer on another
//! (they block on a standard channel, as they would on [`crate::SqliteStore`]'s lock). A
//! connection that turns out broken is replaced once and the request run again.
//!
//! Everything a replica must agree on with the others is one atomic statement: `use_once` is
//! an insert that only overwrites an expired entry, `settle_approval` an update of a row that
//! is still `pending`.
//!
//! The connection is plaintext (`NoTls`): use it on loopback, a Unix socket or a private
//! network. Unlike SQLite, PostgreSQL text cannot hold a NUL character: a key containing one
//! is refused with a store error.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::Duration;

use agentiam_state::postgres_support::{connection_is_broken, quote_ident};
use agentiam_token::Revocation;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement};

use crate::BrokerError;
use crate::approvals::{ApprovalRecord, ApprovalStatus};
use crate::store::{AgentRecord, ConsoleSession, Store};

/// The schema version this code writes (kept in `agentiam_schema`); a newer one is refused.
const SCHEMA_VERSION: i32 = 1;

/// Serialises schema creation between replicas starting at once (`"agentiam"` in ASCII).
const MIGRATION_LOCK: i64 = 0x6167_656e_7469_616d;

/// How long a caller waits for the connection thread's answer before giving up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Used when the URL does not say (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest schema name PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_SCHEMA_BYTES: usize = 63;

/// The tables, created if missing. Text keys compare byte-wise (`COLLATE "C"`), as in SQLite,
/// so listings come back in the same order whatever the database's collation.
const TABLES: &str = r#"
CREATE TABLE IF NOT EXISTS agents (
    spiffe_id TEXT COLLATE "C" PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS revocations (
    kind TEXT COLLATE "C" NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    until BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);
CREATE INDEX IF NOT EXISTS revocations_by_until ON revocations (until);
CREATE TABLE IF NOT EXISTS used_once (
    key TEXT COLLATE "C" PRIMARY KEY,
    until BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS used_once_by_until ON used_once (until);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT COLLATE "C" PRIMARY KEY,
    status TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS approvals_by_status ON approvals (status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS approvals_by_created ON approvals (created_at DESC, id DESC);
CREATE TABLE IF NOT EXISTS approvers (
    name TEXT COLLATE "C" PRIMARY KEY,
    password_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS key_material (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL,
    sealed TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS console_sessions (
    id_sha256 TEXT COLLATE "C" PRIMARY KEY,
    record TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS console_sessions_by_expiry ON console_sessions (expires_at);
"#;

/// The broker's store in a PostgreSQL database, for several broker replicas sharing it.
///
/// ```no_run
/// use agentiam_broker::{PostgresStore, Store};
/// let store = PostgresStore::connect("postgres://agentiam@db.internal/agentiam")?;
/// assert!(store.use_once("client-assertion:abc", 2_000_000_000, 1_700_000_000)?);
/// # Ok::<(), agentiam_broker::BrokerError>(())
/// ```
#[derive(Debug)]
pub struct PostgresStore {
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

fn store_err(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Store(e.to_string())
}

/// The error as a store error. A server error gives its severity, SQLSTATE and message but not
/// its DETAIL, which can quote row values (store errors reach HTTP clients); any other error
/// gives its chain of causes (`error connecting to server: Connection refused ...`).
fn pg_err(e: &postgres::Error) -> BrokerError {
    if let Some(db) = e.as_db_error() {
        return BrokerError::Store(format!(
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
    BrokerError::Store(text)
}

impl From<Failure> for BrokerError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Pg(e) => pg_err(&e),
            Failure::Refused(why) => BrokerError::Store(why),
        }
    }
}

fn revocation_key(what: &Revocation) -> (&'static str, String) {
    match what {
        Revocation::Token(jti) => ("token", jti.clone()),
        Revocation::Agent(id) => ("agent", id.clone()),
        Revocation::Task(id) => ("task", id.clone()),
    }
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

    fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Failure> {
        let statement = self.statement(sql)?;
        Ok(self.client.execute(&statement, params)?)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Failure> {
        let statement = self.statement(sql)?;
        Ok(self.client.query(&statement, params)?)
    }

    /// The first column of the row `sql` returns, if any, as text.
    fn text_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<String>, Failure> {
        let statement = self.statement(sql)?;
        let row = self.client.query_opt(&statement, params)?;
        Ok(row.map(|r| r.try_get::<_, String>(0)).transpose()?)
    }

    /// The first column of every row `sql` returns, as text.
    fn texts(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<String>, Failure> {
        self.query(sql, params)?
            .iter()
            .map(|r| r.try_get::<_, String>(0).map_err(Failure::from))
            .collect()
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
    /// it is replaced once and `f` runs again (a statement that failed with its connection
    /// was, in all but a narrow window, never run; when it was, the second run answers as a
    /// second caller would: `use_once` and `settle_approval` say `false`, which refuses).
    fn run<T>(&mut self, f: &impl Fn(&mut Conn) -> Result<T, Failure>) -> Result<T, BrokerError> {
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

/// The connection thread: runs requests one after another until the store is dropped.
fn work(mut worker: Worker, jobs: mpsc::Receiver<Job>) {
    while let Ok(job) = jobs.recv() {
        // A panic inside the client library must not take the store down: the caller sees its
        // reply channel close (an error), and the next request gets a fresh connection.
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut worker))).is_err() {
            worker.conn = None;
        }
    }
}

/// Creates the schema if missing and records its version, refusing a newer one.
fn migrate(conn: &mut Conn, schema: Option<&str>) -> Result<(), Failure> {
    let mut tx = conn.client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    if let Some(schema) = schema {
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(schema)
        ))?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS agentiam_schema (
             singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
             version INTEGER NOT NULL
         )",
    )?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM agentiam_schema", &[])?
        .map(|row| row.try_get(0))
        .transpose()?;
    if let Some(version) = found
        && version > SCHEMA_VERSION
    {
        return Err(Failure::Refused(format!(
            "the store has schema version {version}; this broker knows up to {SCHEMA_VERSION}"
        )));
    }
    tx.batch_execute(TABLES)?;
    tx.execute(
        "INSERT INTO agentiam_schema (singleton, version) VALUES (TRUE, $1)
         ON CONFLICT (singleton)
         DO UPDATE SET version = GREATEST(agentiam_schema.version, excluded.version)",
        &[&SCHEMA_VERSION],
    )?;
    tx.commit()?;
    Ok(())
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user@host:port/db?...` or
    /// `host=... user=...`) and creates the broker's tables if they are missing, in the
    /// connection's default schema (usually `public`, where PostgreSQL 15 lets only the
    /// database owner create tables). A database written by a newer broker is refused.
    pub fn connect(url: &str) -> Result<Self, BrokerError> {
        Self::start(url, None)
    }

    /// As [`PostgresStore::connect`], with every table in the schema `schema` (created if
    /// missing; the connection's `search_path`): several brokers, or test runs, can share one
    /// database without seeing each other's state.
    pub fn connect_in_schema(url: &str, schema: &str) -> Result<Self, BrokerError> {
        if schema.is_empty() || schema.len() > MAX_SCHEMA_BYTES || schema.contains('\0') {
            return Err(BrokerError::Store(format!(
                "schema name must be 1 to {MAX_SCHEMA_BYTES} bytes"
            )));
        }
        Self::start(url, Some(schema.to_owned()))
    }

    /// The schema this store's tables live in, when one was named.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    fn start(url: &str, schema: Option<String>) -> Result<Self, BrokerError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| BrokerError::Store(format!("postgres: invalid connection URL: {e}")))?;
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
            .name("agentiam-postgres".into())
            .spawn(move || work(worker, incoming))
            .map_err(|e| store_err(format!("postgres: cannot start its thread: {e}")))?;
        let store = Self { jobs, schema };
        let schema = store.schema.clone();
        store.call(move |c| migrate(c, schema.as_deref()))?;
        Ok(store)
    }

    /// Runs `f` on the connection thread and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        f: impl Fn(&mut Conn) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, BrokerError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move |worker: &mut Worker| {
            // The caller may have given up waiting; then nobody needs the answer.
            let _ = reply.send(worker.run(&f));
        });
        self.jobs.send(job).map_err(|_| {
            BrokerError::Store("postgres: the connection thread has stopped".into())
        })?;
        match crate::store::blocking(|| answer.recv_timeout(CALL_TIMEOUT)) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(BrokerError::Store(format!(
                "postgres: no answer within {} s",
                CALL_TIMEOUT.as_secs()
            ))),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(BrokerError::Store(
                "postgres: the request failed inside the client library".into(),
            )),
        }
    }
}

impl Store for PostgresStore {
    fn put_agent(&self, agent: &AgentRecord) -> Result<(), BrokerError> {
        let record = serde_json::to_string(agent).map_err(store_err)?;
        let id = agent.spiffe_id.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO agents (spiffe_id, record) VALUES ($1, $2)
                 ON CONFLICT (spiffe_id) DO UPDATE SET record = excluded.record",
                &[&id, &record],
            )
            .map(|_| ())
        })
    }

    fn delete_agent(&self, spiffe_id: &str) -> Result<bool, BrokerError> {
        let id = spiffe_id.to_owned();
        self.call(move |c| {
            c.execute("DELETE FROM agents WHERE spiffe_id = $1", &[&id])
                .map(|n| n > 0)
        })
    }

    fn agent(&self, spiffe_id: &str) -> Result<Option<AgentRecord>, BrokerError> {
        let id = spiffe_id.to_owned();
        let record = self
            .call(move |c| c.text_opt("SELECT record FROM agents WHERE spiffe_id = $1", &[&id]))?;
        record
            .map(|r| serde_json::from_str(&r).map_err(store_err))
            .transpose()
    }

    fn agents(&self) -> Result<Vec<AgentRecord>, BrokerError> {
        let records =
            self.call(|c| c.texts("SELECT record FROM agents ORDER BY spiffe_id", &[]))?;
        records
            .iter()
            .map(|r| serde_json::from_str(r).map_err(store_err))
            .collect()
    }

    fn revoke(&self, what: &Revocation, until: i64) -> Result<(), BrokerError> {
        let (kind, value) = revocation_key(what);
        self.call(move |c| {
            c.execute(
                "INSERT INTO revocations (kind, value, until) VALUES ($1, $2, $3)
                 ON CONFLICT (kind, value)
                 DO UPDATE SET until = GREATEST(revocations.until, excluded.until)",
                &[&kind, &value, &until],
            )
            .map(|_| ())
        })
    }

    fn is_revoked(&self, what: &Revocation, now: i64) -> Result<bool, BrokerError> {
        let (kind, value) = revocation_key(what);
        self.call(move |c| {
            c.query(
                "SELECT 1 FROM revocations WHERE kind = $1 AND value = $2 AND until >= $3",
                &[&kind, &value, &now],
            )
            .map(|rows| !rows.is_empty())
        })
    }

    fn prune(&self, now: i64) -> Result<(), BrokerError> {
        // One statement, so the three deletions are one transaction and one round trip.
        self.call(move |c| {
            c.execute(
                "WITH r AS (DELETE FROM revocations WHERE until < $1),
                      u AS (DELETE FROM used_once WHERE until < $1)
                 DELETE FROM console_sessions WHERE expires_at < $1",
                &[&now],
            )
            .map(|_| ())
        })
    }

    fn use_once(&self, key: &str, until: i64, now: i64) -> Result<bool, BrokerError> {
        let key = key.to_owned();
        self.call(move |c| {
            // One atomic statement: a new key is inserted, an expired entry is taken over, a
            // live one is left alone (no row changes). Concurrent callers on any replica
            // serialise on the row, and exactly one of them changes it.
            c.execute(
                "INSERT INTO used_once (key, until) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET until = excluded.until
                 WHERE used_once.until < $3",
                &[&key, &until, &now],
            )
            .map(|changed| changed == 1)
        })
    }

    fn put_approval(&self, record: &ApprovalRecord) -> Result<(), BrokerError> {
        let text = serde_json::to_string(record).map_err(store_err)?;
        let id = record.id.clone();
        let status = record.status.as_str();
        let created_at = record.created_at;
        self.call(move |c| {
            c.execute(
                "INSERT INTO approvals (id, status, created_at, record) VALUES ($1, $2, $3, $4)",
                &[&id, &status, &created_at, &text],
            )
            .map(|_| ())
        })
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, BrokerError> {
        let id = id.to_owned();
        let text =
            self.call(move |c| c.text_opt("SELECT record FROM approvals WHERE id = $1", &[&id]))?;
        text.map(|t| serde_json::from_str(&t).map_err(store_err))
            .transpose()
    }

    fn approvals(
        &self,
        status: Option<ApprovalStatus>,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, BrokerError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let texts = self.call(move |c| match status {
            Some(s) => c.texts(
                "SELECT record FROM approvals WHERE status = $1
                 ORDER BY created_at DESC, id DESC LIMIT $2",
                &[&s.as_str(), &limit],
            ),
            None => c.texts(
                "SELECT record FROM approvals ORDER BY created_at DESC, id DESC LIMIT $1",
                &[&limit],
            ),
        })?;
        texts
            .iter()
            .map(|t| serde_json::from_str(t).map_err(store_err))
            .collect()
    }

    fn settle_approval(&self, record: &ApprovalRecord) -> Result<bool, BrokerError> {
        let text = serde_json::to_string(record).map_err(store_err)?;
        let id = record.id.clone();
        let status = record.status.as_str();
        self.call(move |c| {
            // Concurrent updates of the row wait for each other and re-check the condition:
            // only the first finds it still pending.
            c.execute(
                "UPDATE approvals SET status = $2, record = $3 WHERE id = $1 AND status = 'pending'",
                &[&id, &status, &text],
            )
            .map(|changed| changed == 1)
        })
    }

    fn put_approver(&self, name: &str, password_hash: &str) -> Result<(), BrokerError> {
        let name = name.to_owned();
        let hash = password_hash.to_owned();
        self.call(move |c| {
            c.execute(
                "INSERT INTO approvers (name, password_hash) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash",
                &[&name, &hash],
            )
            .map(|_| ())
        })
    }

    fn approver(&self, name: &str) -> Result<Option<String>, BrokerError> {
        let name = name.to_owned();
        self.call(move |c| {
            c.text_opt(
                "SELECT password_hash FROM approvers WHERE name = $1",
                &[&name],
            )
        })
    }

    fn key_material(&self) -> Result<Option<(i64, String)>, BrokerError> {
        self.call(move |c| {
            let rows = c.query("SELECT version, sealed FROM key_material WHERE id = 1", &[])?;
            rows.first()
                .map(|r| Ok((r.try_get::<_, i64>(0)?, r.try_get::<_, String>(1)?)))
                .transpose()
        })
    }

    fn swap_key_material(
        &self,
        expected: Option<i64>,
        version: i64,
        sealed: &str,
    ) -> Result<bool, BrokerError> {
        let sealed = sealed.to_owned();
        self.call(move |c| {
            let changed = match expected {
                None => c.execute(
                    "INSERT INTO key_material (id, version, sealed) VALUES (1, $1, $2)
                     ON CONFLICT (id) DO NOTHING",
                    &[&version, &sealed],
                )?,
                Some(expected) => c.execute(
                    "UPDATE key_material SET version = $1, sealed = $2 WHERE id = 1 AND version = $3",
                    &[&version, &sealed, &expected],
                )?,
            };
            Ok(changed == 1)
        })
    }

    fn put_session(&self, session: &ConsoleSession) -> Result<(), BrokerError> {
        let text = serde_json::to_string(session).map_err(store_err)?;
        let id = session.id_sha256.clone();
        let expires_at = session.expires_at;
        self.call(move |c| {
            c.execute(
                "INSERT INTO console_sessions (id_sha256, record, expires_at) VALUES ($1, $2, $3)",
                &[&id, &text, &expires_at],
            )
            .map(|_| ())
        })
    }

    fn session(&self, id_sha256: &str, now: i64) -> Result<Option<ConsoleSession>, BrokerError> {
        let id = id_sha256.to_owned();
        let text = self.call(move |c| {
            c.text_opt(
                "SELECT record FROM console_sessions WHERE id_sha256 = $1 AND expires_at >= $2",
                &[&id, &now],
            )
        })?;
        text.map(|t| serde_json::from_str(&t).map_err(store_err))
            .transpose()
    }

    fn end_session(&self, id_sha256: &str) -> Result<(), BrokerError> {
        let id = id_sha256.to_owned();
        self.call(move |c| {
            c.execute("DELETE FROM console_sessions WHERE id_sha256 = $1", &[&id])
                .map(|_| ())
        })
    }
}
