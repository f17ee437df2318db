//! The conformance suite against [`RedisState`], and what a server shared by several replicas
//! has to get right: replicas racing for one budget and one nonce, keys the server expires by
//! itself (never before the state does), a lost connection, an unreachable server.
//!
//! These tests need a running server: `AGENTIAM_TEST_REDIS_URL`, by default
//! `redis://127.0.0.1:6379/`. Each test works under a fresh key prefix whose keys it deletes at
//! the end. An unreachable server fails these tests; it never skips them.
#![cfg(feature = "redis")]
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

use agentiam_state::{Counter, RedisState, SharedState, TaskTaint};

const DEFAULT_URL: &str = "redis://127.0.0.1:6379/";

fn url() -> String {
    std::env::var("AGENTIAM_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_URL.to_owned())
}

fn admin_connection(url: &str) -> redis::RedisResult<redis::Connection> {
    redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(2))
}

/// A unique key prefix for one test; its keys are deleted when the test ends, whether it
/// passed or not.
struct TestPrefix {
    url: String,
    prefix: String,
}

impl TestPrefix {
    fn new() -> Self {
        let url = url();
        let reachable =
            admin_connection(&url).and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
        if let Err(e) = reachable {
            panic!(
                "\n\nRedis is not reachable at {}: {e}\n\
                 The RedisState tests need a running server; they do not skip.\n\
                 Start one, e.g.\n\
                 redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" \
                 --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log\n\
                 or point AGENTIAM_TEST_REDIS_URL at a server (default: {DEFAULT_URL}).\n",
                common::shown(&url)
            );
        }
        let prefix = format!("{}:", common::unique("agentiam-state-test"));
        Self { url, prefix }
    }

    /// A state (a "replica") under this prefix, on a connection of its own.
    fn state(&self) -> RedisState {
        RedisState::connect(&self.url)
            .unwrap_or_else(|e| panic!("RedisState::connect({}): {e}", common::shown(&self.url)))
            .with_prefix(&self.prefix)
    }

    fn admin(&self) -> redis::Connection {
        admin_connection(&self.url).unwrap()
    }

    /// Every key under this prefix.
    fn keys(&self) -> Vec<String> {
        let mut conn = self.admin();
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .unwrap();
        keys.sort();
        keys
    }
}

impl Drop for TestPrefix {
    fn drop(&mut self) {
        let cleaned = admin_connection(&self.url).and_then(|mut conn| {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}*", self.prefix))
                .query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(&keys).exec(&mut conn)?;
            }
            Ok(())
        });
        if let Err(e) = cleaned {
            eprintln!("could not delete the keys under {}: {e}", self.prefix);
        }
    }
}

#[test]
fn redis_state_conforms() {
    let prefix = TestPrefix::new();
    common::conformance(&prefix.state());
}

#[test]
fn redis_spends_exactly_the_budget_across_connections() {
    let prefix = TestPrefix::new();
    common::race_spend(&|| Arc::new(prefix.state()) as Arc<dyn SharedState>);
}

#[test]
fn redis_spends_budget_chains_all_or_none_across_connections() {
    let prefix = TestPrefix::new();
    common::race_spend_chains(&|| Arc::new(prefix.state()) as Arc<dyn SharedState>);
}

#[test]
fn redis_use_once_has_one_winner_across_connections() {
    let prefix = TestPrefix::new();
    common::race_use_once(&|| Arc::new(prefix.state()) as Arc<dyn SharedState>);
}

#[test]
fn redis_prune_drops_only_expired() {
    let prefix = TestPrefix::new();
    let state = prefix.state();
    common::prune_drops_only_expired(&state, &|now| state.prune(now).unwrap());
}

#[test]
fn redis_keys_expire_by_the_server_clock_after_the_state_does() {
    let prefix = TestPrefix::new();
    let state = prefix.state();
    let t = common::now();
    assert!(state.use_once("nonce", t + 60, t).unwrap());
    assert!(state.spend(&[Counter::new("jti", 5)], t + 100, t).unwrap());
    // A later call with an earlier expiry does not shorten the key's life.
    assert!(state.spend(&[Counter::new("jti", 5)], t + 10, t).unwrap());
    let mut add = TaskTaint::default();
    add.add_source("web_fetch");
    state.extend_task_taint("task-7", &add, t + 200, t).unwrap();
    state.extend_task_taint("task-7", &add, t + 20, t).unwrap();

    let p = &prefix.prefix;
    assert_eq!(
        prefix.keys(),
        vec![
            format!("{p}budget:jti"),
            format!("{p}once:nonce"),
            format!("{p}taint:task-7"),
        ]
    );
    let mut conn = prefix.admin();
    let mut expiry =
        |key: String| -> i64 { redis::cmd("EXPIRETIME").arg(&key).query(&mut conn).unwrap() };
    // Kept five minutes past the state's own expiry (clock skew between guards and server).
    assert_eq!(expiry(format!("{p}once:nonce")), t + 60 + 300);
    assert_eq!(expiry(format!("{p}budget:jti")), t + 100 + 300);
    assert_eq!(expiry(format!("{p}taint:task-7")), t + 200 + 300);
}

#[test]
fn redis_lost_connection_is_replaced() {
    let prefix = TestPrefix::new();
    let state = prefix.state();
    let t = common::now();
    assert!(state.use_once("before", t + 60, t).unwrap());
    // The state names its connection after its prefix; kill exactly that one.
    let mut admin = prefix.admin();
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
    let name = format!("name=agentiam-state:{}", prefix.prefix);
    let ids: Vec<&str> = clients
        .lines()
        .filter(|line| line.split(' ').any(|field| field == name))
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .collect();
    assert_eq!(ids.len(), 1, "the state's one connection in:\n{clients}");
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(ids[0])
        .exec(&mut admin)
        .unwrap();
    // The next call finds the connection dead, opens another and runs on it.
    assert!(!state.use_once("before", t + 60, t).unwrap());
    assert!(state.use_once("after", t + 60, t).unwrap());
}

#[test]
fn redis_unreachable_server_fails_fast() {
    let started = Instant::now();
    let err = RedisState::connect("redis://127.0.0.1:1/").unwrap_err();
    assert_eq!(err.code(), "guard.state_unavailable");
    assert!(
        err.to_string()
            .starts_with("shared guard state unavailable: redis:"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let err = RedisState::connect("not a url").unwrap_err();
    assert_eq!(err.code(), "guard.state_unavailable");
}

#[test]
fn redis_prefixes_keep_states_apart() {
    let first = TestPrefix::new();
    let second = TestPrefix::new();
    let t = common::now();
    assert!(first.state().use_once("nonce", t + 60, t).unwrap());
    assert!(second.state().use_once("nonce", t + 60, t).unwrap());
    assert!(!first.state().use_once("nonce", t + 60, t).unwrap());
    let default = RedisState::connect(&first.url).unwrap();
    assert_eq!(default.prefix(), RedisState::DEFAULT_PREFIX);
    assert_eq!(RedisState::DEFAULT_PREFIX, "agentiam:");
    // Debug shows where, never a password.
    assert!(format!("{default:?}").contains("prefix"), "{default:?}");
}
