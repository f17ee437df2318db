//! [`SqliteStore`]: the embedded store (bundled SQLite, WAL, one file under the data directory).

use std::path::Path;
use std::sync::Mutex;

use agentiam_token::Revocation;
use rusqlite::{Connection, OptionalExtension, params};

use crate::BrokerError;
use crate::store::{AgentRecord, Store};

/// The schema version this code writes; an older file is migrated, a newer one refused.
const SCHEMA_VERSION: i64 = 1;

/// The broker's store in one SQLite file (or in memory, for tests).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn store_err(e: impl std::fmt::Display) -> BrokerError {
    BrokerError::Store(e.to_string())
}

fn revocation_key(what: &Revocation) -> (&'static str, &str) {
    match what {
        Revocation::Token(jti) => ("token", jti),
        Revocation::Agent(id) => ("agent", id),
        Revocation::Task(id) => ("task", id),
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`, in WAL mode with full durability.
    pub fn open(path: &Path) -> Result<Self, BrokerError> {
        let conn = Connection::open(path).map_err(store_err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(store_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(store_err)?;
        Self::init(conn)
    }

    /// A store that lives in memory (tests, the demo).
    pub fn in_memory() -> Result<Self, BrokerError> {
        Self::init(Connection::open_in_memory().map_err(store_err)?)
    }

    fn init(conn: Connection) -> Result<Self, BrokerError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(store_err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(store_err)?;
        if version > SCHEMA_VERSION {
            return Err(BrokerError::Store(format!(
                "the store has schema version {version}; this broker knows up to {SCHEMA_VERSION}"
            )));
        }
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS agents (
                 spiffe_id TEXT PRIMARY KEY,
                 record TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS revocations (
                 kind TEXT NOT NULL,
                 value TEXT NOT NULL,
                 until INTEGER NOT NULL,
                 PRIMARY KEY (kind, value)
             );",
        )
        .map_err(store_err)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(store_err)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, BrokerError> {
        let conn = self
            .conn
            .lock()
            .map_err(|_| BrokerError::Store("store lock poisoned".into()))?;
        f(&conn).map_err(store_err)
    }
}

impl Store for SqliteStore {
    fn put_agent(&self, agent: &AgentRecord) -> Result<(), BrokerError> {
        let record = serde_json::to_string(agent).map_err(store_err)?;
        self.with(|c| {
            c.execute(
                "INSERT INTO agents (spiffe_id, record) VALUES (?1, ?2)
                 ON CONFLICT (spiffe_id) DO UPDATE SET record = excluded.record",
                params![agent.spiffe_id, record],
            )
            .map(|_| ())
        })
    }

    fn agent(&self, spiffe_id: &str) -> Result<Option<AgentRecord>, BrokerError> {
        let record: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT record FROM agents WHERE spiffe_id = ?1",
                params![spiffe_id],
                |row| row.get(0),
            )
            .optional()
        })?;
        record
            .map(|r| serde_json::from_str(&r).map_err(store_err))
            .transpose()
    }

    fn agents(&self) -> Result<Vec<AgentRecord>, BrokerError> {
        let records: Vec<String> = self.with(|c| {
            let mut stmt = c.prepare("SELECT record FROM agents ORDER BY spiffe_id")?;
            let rows = stmt.query_map([], |row| row.get(0))?;
            rows.collect()
        })?;
        records
            .iter()
            .map(|r| serde_json::from_str(r).map_err(store_err))
            .collect()
    }

    fn revoke(&self, what: &Revocation, until: i64) -> Result<(), BrokerError> {
        let (kind, value) = revocation_key(what);
        self.with(|c| {
            c.execute(
                "INSERT INTO revocations (kind, value, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (kind, value) DO UPDATE SET until = max(until, excluded.until)",
                params![kind, value, until],
            )
            .map(|_| ())
        })
    }

    fn is_revoked(&self, what: &Revocation, now: i64) -> Result<bool, BrokerError> {
        let (kind, value) = revocation_key(what);
        self.with(|c| {
            c.query_row(
                "SELECT 1 FROM revocations WHERE kind = ?1 AND value = ?2 AND until >= ?3",
                params![kind, value, now],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
        })
    }

    fn prune(&self, now: i64) -> Result<(), BrokerError> {
        self.with(|c| {
            c.execute("DELETE FROM revocations WHERE until < ?1", params![now])
                .map(|_| ())
        })
    }
}
