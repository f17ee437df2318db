//! The conformance suite against [`PostgresState`], and what a database shared by several
//! replicas has to get right: replicas racing for one budget and one nonce, replicas creating
//! the tables at once, a lost connection, a newer schema, an unreachable server.
//!
//! These tests need a running server: `AGENTIAM_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`. Each test works in a fresh schema it drops at the
//! end. An unreachable server fails these tests; it never skips them.
#![cfg(feature = "postgres")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use agentiam_state::{PostgresState, SharedState, TaskTaint};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

fn url() -> String {
    std::env::var("AGENTIAM_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

/// An error and its causes, on one line.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

/// Runs `sql` on a plain connection of its own.
fn admin(url: &str, sql: &str) -> Result<Vec<postgres::Row>, String> {
    admin_in(url, None, sql)
}

/// Runs `sql` on a plain connection of its own, with `schema` first on the search path.
fn admin_in(url: &str, schema: Option<&str>, sql: &str) -> Result<Vec<postgres::Row>, String> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .map_err(|e| format!("cannot connect: {}", with_causes(&e)))?;
    if let Some(schema) = schema {
        client
            .batch_execute(&format!("SET search_path TO \"{schema}\""))
            .map_err(|e| with_causes(&e))?;
    }
    client.query(sql, &[]).map_err(|e| with_causes(&e))
}

/// `url` with an `application_name`, to find the state's own connection on the server.
fn with_application_name(url: &str, name: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}application_name={name}")
    } else {
        format!("{url} application_name={name}")
    }
}

/// A uniquely named schema for one test, dropped (with everything in it) when the test ends,
/// whether it passed or not.
struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    fn new() -> Self {
        let url = url();
        if let Err(e) = admin(&url, "SELECT 1") {
            panic!(
                "\n\nPostgreSQL is not reachable at {}: {e}\n\
                 The PostgresState tests need a running server; they do not skip.\n\
                 Start it (e.g. `service postgresql start`, or `pg_ctlcluster 15 main start`),\n\
                 or point AGENTIAM_TEST_POSTGRES_URL at a server where the user may create\n\
                 schemas (default: {DEFAULT_URL}).\n",
                common::shown(&url)
            );
        }
        let name = common::unique("agentiam_state_test");
        assert!(name.len() <= 63, "schema name too long: {name}");
        Self { url, name }
    }

    /// A state (a "replica") in this schema, on a connection of its own.
    fn state(&self) -> PostgresState {
        self.state_at(&self.url)
    }

    fn state_at(&self, url: &str) -> PostgresState {
        PostgresState::connect_schema(url, &self.name).unwrap_or_else(|e| {
            panic!(
                "PostgresState::connect_schema({}, {}): {e}",
                common::shown(url),
                self.name
            )
        })
    }

    /// Runs SQL with this schema first on the search path.
    fn sql(&self, sql: &str) -> Vec<postgres::Row> {
        admin_in(&self.url, Some(&self.name), sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let drop_schema = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        if let Err(e) = admin(&self.url, &drop_schema) {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

#[test]
fn postgres_state_conforms() {
    let schema = TestSchema::new();
    common::conformance(&schema.state());
}

#[test]
fn postgres_spends_exactly_the_budget_across_replicas() {
    let schema = TestSchema::new();
    common::race_spend(&|| Arc::new(schema.state()) as Arc<dyn SharedState>);
}

#[test]
fn postgres_spends_budget_chains_all_or_none_across_replicas() {
    let schema = TestSchema::new();
    common::race_spend_chains(&|| Arc::new(schema.state()) as Arc<dyn SharedState>);
}

#[test]
fn postgres_use_once_has_one_winner_across_replicas() {
    let schema = TestSchema::new();
    common::race_use_once(&|| Arc::new(schema.state()) as Arc<dyn SharedState>);
}

#[test]
fn postgres_prune_drops_only_expired() {
    let schema = TestSchema::new();
    let state = schema.state();
    common::prune_drops_only_expired(&state, &|now| state.prune(now).unwrap());
    // The pruned task's sources and fingerprints went with it.
    let rows = schema.sql(
        "SELECT count(*) FROM guard_taint_fingerprints f
         WHERE NOT EXISTS (SELECT 1 FROM guard_taint t WHERE t.task = f.task)",
    );
    assert_eq!(rows[0].get::<_, i64>(0), 0);
}

#[test]
fn postgres_replicas_starting_at_once_create_the_tables_once() {
    let schema = TestSchema::new();
    let t = common::now();
    let states: Vec<PostgresState> = std::thread::scope(|scope| {
        let starting: Vec<_> = (0..6).map(|_| scope.spawn(|| schema.state())).collect();
        starting.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(states[0].use_once("nonce", t + 60, t).unwrap());
    for state in &states[1..] {
        assert!(!state.use_once("nonce", t + 60, t).unwrap());
    }
    assert_eq!(states[0].schema(), Some(schema.name.as_str()));
}

#[test]
fn postgres_lost_connection_is_replaced() {
    let schema = TestSchema::new();
    let app = common::unique("agentiam_state_reconnect");
    let state = schema.state_at(&with_application_name(&schema.url, &app));
    let t = common::now();
    assert!(state.use_once("before", t + 60, t).unwrap());
    let killed = admin(
        &schema.url,
        &format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE application_name = '{app}'"
        ),
    )
    .unwrap();
    assert_eq!(killed.len(), 1, "the state's one connection");
    // The next call finds the connection dead, opens another and runs on it.
    assert!(!state.use_once("before", t + 60, t).unwrap());
    assert!(state.use_once("after", t + 60, t).unwrap());
}

#[test]
fn postgres_unreachable_server_fails_fast() {
    let started = Instant::now();
    let err = PostgresState::connect("postgres://postgres@127.0.0.1:1/test").unwrap_err();
    assert_eq!(err.code(), "guard.state_unavailable");
    assert!(
        err.to_string()
            .starts_with("shared guard state unavailable: postgres:"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let err = PostgresState::connect("not a url = = =").unwrap_err();
    assert_eq!(err.code(), "guard.state_unavailable");
}

#[test]
fn postgres_refuses_text_it_cannot_store() {
    let schema = TestSchema::new();
    let state = schema.state();
    let t = common::now();
    assert!(state.use_once("nul\0key", t + 60, t).is_err());
    assert!(state.task_taint("nul\0task", t).is_err());
    let mut add = TaskTaint::default();
    add.add_source("nul\0source");
    assert!(state.extend_task_taint("task", &add, t + 60, t).is_err());
    assert_eq!(state.task_taint("task", t).unwrap(), TaskTaint::default());
    assert!(PostgresState::connect_schema(&schema.url, "").is_err());
    assert!(PostgresState::connect_schema(&schema.url, &"s".repeat(64)).is_err());
}

#[test]
fn postgres_refuses_a_newer_schema() {
    let schema = TestSchema::new();
    drop(schema.state());
    schema.sql("UPDATE guard_state_version SET version = 99");
    let err = PostgresState::connect_schema(&schema.url, &schema.name).unwrap_err();
    assert_eq!(err.code(), "guard.state_unavailable");
    assert!(err.to_string().contains("version 99"), "{err}");
}
