//! [`SqliteStore`]: the embedded store (bundled SQLite, WAL, one file under the data directory).

use std::path::Path;
use std::sync::Mutex;

use agentiam_token::Revocation;
use rusqlite::{Connection, OptionalExtension, params};

use crate::BrokerError;
use crate::approvals::{ApprovalRecord, ApprovalStatus};
use crate::store::{AgentRecord, ConsoleSession, Store};

/// The schema version this code writes; an older file is migrated, a newer one refused.
const SCHEMA_VERSION: i64 = 2;

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
             );
             CREATE TABLE IF NOT EXISTS used_once (
                 key TEXT PRIMARY KEY,
                 until INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS approvals (
                 id TEXT PRIMARY KEY,
                 status TEXT NOT NULL,
                 created_at INTEGER NOT NULL,
                 record TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS approvals_by_status ON approvals (status, created_at);
             CREATE TABLE IF NOT EXISTS approvers (
                 name TEXT PRIMARY KEY,
                 password_hash TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS key_material (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 version INTEGER NOT NULL,
                 sealed TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS console_sessions (
                 id_sha256 TEXT PRIMARY KEY,
                 record TEXT NOT NULL,
                 expires_at INTEGER NOT NULL
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

    /// A write: it commits with an fsync, so it runs without holding a tokio worker
    /// ([`crate::store::blocking`]); reads are served from SQLite's cache in microseconds and
    /// run in place.
    fn write<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, BrokerError> {
        crate::store::blocking(|| self.with(f))
    }
}

impl Store for SqliteStore {
    fn put_agent(&self, agent: &AgentRecord) -> Result<(), BrokerError> {
        let record = serde_json::to_string(agent).map_err(store_err)?;
        self.write(|c| {
            c.execute(
                "INSERT INTO agents (spiffe_id, record) VALUES (?1, ?2)
                 ON CONFLICT (spiffe_id) DO UPDATE SET record = excluded.record",
                params![agent.spiffe_id, record],
            )
            .map(|_| ())
        })
    }

    fn delete_agent(&self, spiffe_id: &str) -> Result<bool, BrokerError> {
        self.write(|c| {
            c.execute(
                "DELETE FROM agents WHERE spiffe_id = ?1",
                params![spiffe_id],
            )
            .map(|n| n > 0)
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
        self.write(|c| {
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
        self.write(|c| {
            c.execute("DELETE FROM revocations WHERE until < ?1", params![now])?;
            c.execute("DELETE FROM used_once WHERE until < ?1", params![now])?;
            c.execute(
                "DELETE FROM console_sessions WHERE expires_at < ?1",
                params![now],
            )
            .map(|_| ())
        })
    }

    fn use_once(&self, key: &str, until: i64, now: i64) -> Result<bool, BrokerError> {
        self.write(|c| {
            // An expired entry may be reused; a live one may not.
            c.execute(
                "DELETE FROM used_once WHERE key = ?1 AND until < ?2",
                params![key, now],
            )?;
            c.execute(
                "INSERT INTO used_once (key, until) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, until],
            )
            .map(|inserted| inserted == 1)
        })
    }

    fn put_approval(&self, record: &ApprovalRecord) -> Result<(), BrokerError> {
        let text = serde_json::to_string(record).map_err(store_err)?;
        self.write(|c| {
            c.execute(
                "INSERT INTO approvals (id, status, created_at, record) VALUES (?1, ?2, ?3, ?4)",
                params![record.id, record.status.as_str(), record.created_at, text],
            )
            .map(|_| ())
        })
    }

    fn approval(&self, id: &str) -> Result<Option<ApprovalRecord>, BrokerError> {
        let text: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT record FROM approvals WHERE id = ?1",
                params![id],
                |row| row.get(0),
            )
            .optional()
        })?;
        text.map(|t| serde_json::from_str(&t).map_err(store_err))
            .transpose()
    }

    fn approvals(
        &self,
        status: Option<ApprovalStatus>,
        limit: usize,
    ) -> Result<Vec<ApprovalRecord>, BrokerError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let texts: Vec<String> = self.with(|c| match status {
            Some(s) => {
                let mut stmt = c.prepare(
                    "SELECT record FROM approvals WHERE status = ?1
                     ORDER BY created_at DESC, id DESC LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![s.as_str(), limit], |row| row.get(0))?;
                rows.collect()
            }
            None => {
                let mut stmt = c.prepare(
                    "SELECT record FROM approvals ORDER BY created_at DESC, id DESC LIMIT ?1",
                )?;
                let rows = stmt.query_map(params![limit], |row| row.get(0))?;
                rows.collect()
            }
        })?;
        texts
            .iter()
            .map(|t| serde_json::from_str(t).map_err(store_err))
            .collect()
    }

    fn settle_approval(&self, record: &ApprovalRecord) -> Result<bool, BrokerError> {
        let text = serde_json::to_string(record).map_err(store_err)?;
        self.write(|c| {
            c.execute(
                "UPDATE approvals SET status = ?2, record = ?3 WHERE id = ?1 AND status = 'pending'",
                params![record.id, record.status.as_str(), text],
            )
            .map(|changed| changed == 1)
        })
    }

    fn put_approver(&self, name: &str, password_hash: &str) -> Result<(), BrokerError> {
        self.write(|c| {
            c.execute(
                "INSERT INTO approvers (name, password_hash) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash",
                params![name, password_hash],
            )
            .map(|_| ())
        })
    }

    fn approver(&self, name: &str) -> Result<Option<String>, BrokerError> {
        self.with(|c| {
            c.query_row(
                "SELECT password_hash FROM approvers WHERE name = ?1",
                params![name],
                |row| row.get(0),
            )
            .optional()
        })
    }

    fn put_session(&self, session: &ConsoleSession) -> Result<(), BrokerError> {
        let text = serde_json::to_string(session).map_err(store_err)?;
        self.write(|c| {
            c.execute(
                "INSERT INTO console_sessions (id_sha256, record, expires_at) VALUES (?1, ?2, ?3)",
                params![session.id_sha256, text, session.expires_at],
            )
            .map(|_| ())
        })
    }

    fn session(&self, id_sha256: &str, now: i64) -> Result<Option<ConsoleSession>, BrokerError> {
        let text: Option<String> = self.with(|c| {
            c.query_row(
                "SELECT record FROM console_sessions WHERE id_sha256 = ?1 AND expires_at >= ?2",
                params![id_sha256, now],
                |row| row.get(0),
            )
            .optional()
        })?;
        text.map(|t| serde_json::from_str(&t).map_err(store_err))
            .transpose()
    }

    fn end_session(&self, id_sha256: &str) -> Result<(), BrokerError> {
        self.write(|c| {
            c.execute(
                "DELETE FROM console_sessions WHERE id_sha256 = ?1",
                params![id_sha256],
            )
            .map(|_| ())
        })
    }

    fn key_material(&self) -> Result<Option<(i64, String)>, BrokerError> {
        self.with(|c| {
            c.query_row(
                "SELECT version, sealed FROM key_material WHERE id = 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
        })
    }

    fn swap_key_material(
        &self,
        expected: Option<i64>,
        version: i64,
        sealed: &str,
    ) -> Result<bool, BrokerError> {
        self.write(|c| match expected {
            None => c
                .execute(
                    "INSERT INTO key_material (id, version, sealed) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO NOTHING",
                    params![version, sealed],
                )
                .map(|n| n == 1),
            Some(expected) => c
                .execute(
                    "UPDATE key_material SET version = ?1, sealed = ?2 WHERE id = 1 AND version = ?3",
                    params![version, sealed, expected],
                )
                .map(|n| n == 1),
        })
    }
}
