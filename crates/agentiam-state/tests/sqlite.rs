//! The conformance suite against [`SqliteState`], and what a file shared by several
//! connections (as by several processes) has to get right: workers racing for one budget and
//! one nonce, state that outlives the connection, a newer schema, a path that cannot be opened.
#![cfg(feature = "sqlite")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentiam_state::{Counter, SharedState, SqliteState};

/// Set in the worker processes `sqlite_processes_share_one_budget_and_one_nonce` starts: the
/// database file they share.
const WORKER_DB: &str = "AGENTIAM_STATE_TEST_WORKER_DB";
/// The time every worker passes as `now`, so they agree on expiry.
const WORKER_NOW: &str = "AGENTIAM_STATE_TEST_WORKER_NOW";
/// When the workers start racing (milliseconds since the epoch), so that they overlap.
const WORKER_START: &str = "AGENTIAM_STATE_TEST_WORKER_START";

fn epoch_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn open(path: &Path) -> SqliteState {
    SqliteState::open(path).unwrap_or_else(|e| panic!("SqliteState::open({path:?}): {e}"))
}

#[test]
fn sqlite_state_conforms() {
    let dir = tempfile::tempdir().unwrap();
    common::conformance(&open(&dir.path().join("state.db")));
}

#[test]
fn sqlite_spends_exactly_the_budget_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    common::race_spend(&|| Arc::new(open(&path)) as Arc<dyn SharedState>);
}

#[test]
fn sqlite_spends_budget_chains_all_or_none_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    common::race_spend_chains(&|| Arc::new(open(&path)) as Arc<dyn SharedState>);
}

#[test]
fn sqlite_use_once_has_one_winner_across_connections() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    common::race_use_once(&|| Arc::new(open(&path)) as Arc<dyn SharedState>);
}

/// Four processes (this test binary again, running only this test as a worker) open one file
/// and each try a nonce once and a budget of 50 fifty times: one nonce winner, 50 calls.
#[test]
fn sqlite_processes_share_one_budget_and_one_nonce() {
    if let Ok(path) = std::env::var(WORKER_DB) {
        let now: i64 = std::env::var(WORKER_NOW).unwrap().parse().unwrap();
        let start: u128 = std::env::var(WORKER_START).unwrap().parse().unwrap();
        let state = open(Path::new(&path));
        let wait = start.saturating_sub(epoch_millis());
        std::thread::sleep(Duration::from_millis(u64::try_from(wait).unwrap()));
        let nonce = state.use_once("race:nonce", now + 600, now).unwrap();
        let mut won = 0;
        for _ in 0..50 {
            if state
                .spend(&[Counter::new("race:budget", 50)], now + 600, now)
                .unwrap()
            {
                won += 1;
            }
            // A pause between calls lets the other processes in: the calls interleave.
            std::thread::sleep(Duration::from_millis(1));
        }
        println!("worker-result nonce={nonce} won={won}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(open(&path));
    let now = common::now();
    let start = epoch_millis() + 500;
    let exe = std::env::current_exe().unwrap();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "sqlite_processes_share_one_budget_and_one_nonce",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(WORKER_DB, &path)
                .env(WORKER_NOW, now.to_string())
                .env(WORKER_START, start.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start a worker process {exe:?}: {e}"))
        })
        .collect();
    let (mut nonces, mut won, mut each) = (0, 0, Vec::new());
    for worker in workers {
        let output = worker.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "worker failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("worker-result ").map(|(_, result)| result))
            .unwrap_or_else(|| panic!("no result from the worker:\n{stdout}"));
        for field in line.split(' ') {
            match field.split_once('=') {
                Some(("nonce", v)) => nonces += usize::from(v == "true"),
                Some(("won", v)) => {
                    let w = v.parse::<usize>().unwrap();
                    won += w;
                    each.push(w);
                }
                _ => panic!("unexpected worker output {line:?}"),
            }
        }
    }
    assert_eq!(nonces, 1, "exactly one process used the nonce");
    eprintln!("calls won by each process: {each:?}");
    assert_eq!(won, 50, "200 attempts against a budget of 50: {each:?}");
}

#[test]
fn sqlite_prune_drops_only_expired() {
    let dir = tempfile::tempdir().unwrap();
    let state = open(&dir.path().join("state.db"));
    common::prune_drops_only_expired(&state, &|now| state.prune(now).unwrap());
}

#[test]
fn sqlite_state_outlives_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let t = common::now();
    {
        let state = open(&path);
        assert!(state.use_once("nonce", t + 60, t).unwrap());
    }
    let reopened = open(&path);
    assert!(!reopened.use_once("nonce", t + 60, t).unwrap());
    let mode: String = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn sqlite_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    drop(open(&path));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute("UPDATE guard_state_version SET version = 99", [])
        .unwrap();
    let err = SqliteState::open(&path).unwrap_err();
    assert_eq!(err.code(), "guard.state_unavailable");
    assert!(err.to_string().contains("version 99"), "{err}");
}

#[test]
fn sqlite_unopenable_path_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("state.db");
    let err = SqliteState::open(&path).unwrap_err();
    assert_eq!(err.code(), "guard.state_unavailable");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}
