//! One set of behaviour checks for every [`Store`], run against the embedded SQLite store and
//! against PostgreSQL; then what only a shared database has to get right: replicas racing
//! for the same nonce or the same approval, schema creation by replicas starting at once, a
//! lost connection, a newer schema, and calls from inside a multi-thread tokio runtime.
//!
//! The PostgreSQL tests need a running server: `AGENTIAM_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test`. Each test works in a fresh schema it drops at the
//! end. An unreachable server fails these tests; it never skips them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "test harness: a panic is a failed test"
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentiam_broker::{
    AgentRecord, ApprovalRecord, ApprovalStatus, BrokerError, ConsoleSession, PostgresStore,
    SqliteStore, Store,
};
use agentiam_guard::Approval;
use agentiam_token::Revocation;
use serde_json::json;

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

// ---------------------------------------------------------------------------------------------
// Records.

fn agent_record(spiffe_id: &str, max_scopes: &str) -> AgentRecord {
    AgentRecord {
        spiffe_id: spiffe_id.into(),
        max_scopes: max_scopes.into(),
        allowed_digests: vec![format!("sha256:{}", "ab".repeat(32))],
        jwks: Some(
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}),
        ),
        attestors: vec!["configuration".into()],
        registration_token_sha256: None,
    }
}

fn pending_record(id: &str, created_at: i64) -> ApprovalRecord {
    common::pending_record(id, created_at, 2_000_000_000)
}

/// `pending` as settled by `approver`.
fn settled(pending: &ApprovalRecord, status: ApprovalStatus, approver: &str) -> ApprovalRecord {
    let mut record = pending.clone();
    record.status = status;
    record.settled_at = Some(pending.created_at + 5);
    record.settled_by = Some(approver.into());
    match status {
        ApprovalStatus::Approved => {
            record.approval = Some(Approval {
                digest: pending.request.digest.clone(),
                nonce: pending.request.nonce.clone(),
                expires_at: pending.request.expires_at,
                approver: format!("kid-{approver}"),
                signature: "c2lnbmF0dXJl".into(),
                call: format!("call-of-{}", pending.request.digest),
            });
        }
        ApprovalStatus::Denied => record.reason = Some(format!("{approver} said no")),
        ApprovalStatus::Pending | ApprovalStatus::Expired => {}
    }
    record
}

fn session(id: &str, expires_at: i64) -> ConsoleSession {
    ConsoleSession {
        id_sha256: id.into(),
        approver: "controller".into(),
        csrf: format!("csrf-{id}"),
        expires_at,
    }
}

fn ids(records: &[ApprovalRecord]) -> Vec<&str> {
    records.iter().map(|r| r.id.as_str()).collect()
}

fn assert_store_error(result: Result<impl std::fmt::Debug, BrokerError>, what: &str) {
    match result {
        Err(e) => assert_eq!(e.code(), "broker.store_unavailable", "{what}: {e}"),
        Ok(v) => panic!("{what}: expected a store error, got {v:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The behaviour every store must have.

fn conformance(store: &dyn Store) {
    agents(store);
    revocations(store);
    use_once(store);
    approvals(store);
    approvers(store);
    sessions(store);
}

fn agents(store: &dyn Store) {
    assert_eq!(
        store.agent("spiffe://acme.test/agent/nobody").unwrap(),
        None
    );
    assert_eq!(store.agents().unwrap(), vec![]);
    // Listed by SPIFFE ID, byte-wise ("A" < "a" < "b"), whatever the database's collation.
    for id in ["b", "a", "A"] {
        store
            .put_agent(&agent_record(
                &format!("spiffe://acme.test/agent/{id}"),
                "read",
            ))
            .unwrap();
    }
    let listed: Vec<String> = store
        .agents()
        .unwrap()
        .into_iter()
        .map(|a| a.spiffe_id)
        .collect();
    assert_eq!(
        listed,
        [
            "spiffe://acme.test/agent/A",
            "spiffe://acme.test/agent/a",
            "spiffe://acme.test/agent/b"
        ]
    );
    // A registration round-trips whole, and a second one of the same ID replaces it.
    let a = agent_record("spiffe://acme.test/agent/a", "read");
    assert_eq!(store.agent(&a.spiffe_id).unwrap(), Some(a.clone()));
    let mut replaced = agent_record("spiffe://acme.test/agent/a", "read write:invoices");
    replaced.jwks = None;
    replaced.allowed_digests = vec![];
    replaced.attestors = vec![];
    replaced.registration_token_sha256 = Some("cd".repeat(32));
    store.put_agent(&replaced).unwrap();
    assert_eq!(store.agent(&a.spiffe_id).unwrap(), Some(replaced));
    assert_eq!(store.agents().unwrap().len(), 3);
    // Deleting removes exactly that registration, once.
    assert!(store.delete_agent(&a.spiffe_id).unwrap());
    assert!(!store.delete_agent(&a.spiffe_id).unwrap());
    assert_eq!(store.agent(&a.spiffe_id).unwrap(), None);
    assert_eq!(store.agents().unwrap().len(), 2);
}

fn revocations(store: &dyn Store) {
    let t1 = Revocation::Token("t1".into());
    assert!(!store.is_revoked(&t1, 0).unwrap());
    store.revoke(&t1, 100).unwrap();
    // Revoked up to and including `until`.
    assert!(store.is_revoked(&t1, 0).unwrap());
    assert!(store.is_revoked(&t1, 100).unwrap());
    assert!(!store.is_revoked(&t1, 101).unwrap());
    // The kinds are separate: the same value as an agent or a task is not revoked.
    assert!(
        !store
            .is_revoked(&Revocation::Agent("t1".into()), 0)
            .unwrap()
    );
    assert!(!store.is_revoked(&Revocation::Task("t1".into()), 0).unwrap());
    // A shorter revocation does not shorten a longer one; a longer one extends it.
    store.revoke(&t1, 50).unwrap();
    assert!(store.is_revoked(&t1, 100).unwrap());
    store.revoke(&t1, 200).unwrap();
    assert!(store.is_revoked(&t1, 200).unwrap());
    assert!(!store.is_revoked(&t1, 201).unwrap());

    // Pruning forgets what ended before `now`, and keeps what ends at `now` or later.
    let task = Revocation::Task("task-9".into());
    let agent = Revocation::Agent("spiffe://acme.test/agent/x".into());
    store.revoke(&task, 10).unwrap();
    store.revoke(&agent, 300).unwrap();
    store.prune(11).unwrap();
    assert!(!store.is_revoked(&task, 0).unwrap(), "pruned");
    assert!(store.is_revoked(&t1, 0).unwrap());
    store.prune(300).unwrap();
    assert!(store.is_revoked(&agent, 0).unwrap(), "ends at now: kept");
    assert!(!store.is_revoked(&t1, 0).unwrap(), "pruned");
    store.prune(301).unwrap();
    assert!(!store.is_revoked(&agent, 0).unwrap(), "pruned");
}

fn use_once(store: &dyn Store) {
    assert!(store.use_once("iss|jti-1", 100, 50).unwrap(), "first use");
    assert!(!store.use_once("iss|jti-1", 100, 60).unwrap(), "replay");
    assert!(store.use_once("iss|jti-2", 100, 60).unwrap(), "another key");
    // Live up to and including `until`; after that the key may be used again, and the new
    // use lasts until its own `until`.
    assert!(!store.use_once("iss|jti-1", 400, 100).unwrap());
    assert!(
        store.use_once("iss|jti-1", 400, 101).unwrap(),
        "expired entry reused"
    );
    assert!(!store.use_once("iss|jti-1", 500, 400).unwrap());
    assert!(store.use_once("iss|jti-1", 500, 401).unwrap());
    // An entry already expired when recorded is still recorded (it refuses nothing later).
    assert!(store.use_once("iss|jti-3", 5, 10).unwrap());
    assert!(store.use_once("iss|jti-3", 5, 10).unwrap());
    // Pruning forgets expired entries: asked "as of 0" again, a pruned key is new.
    assert!(store.use_once("iss|jti-4", 10, 0).unwrap());
    assert!(store.use_once("iss|jti-5", 20, 0).unwrap());
    store.prune(11).unwrap();
    assert!(store.use_once("iss|jti-4", 10, 0).unwrap(), "pruned");
    assert!(!store.use_once("iss|jti-5", 20, 0).unwrap(), "kept");
}

fn approvals(store: &dyn Store) {
    assert_eq!(store.approval("missing").unwrap(), None);
    assert_eq!(store.approvals(None, 10).unwrap(), vec![]);
    let records = [
        pending_record("a", 2),
        pending_record("B", 2),
        pending_record("c", 1),
        pending_record("d", 3),
        pending_record("e", 2),
    ];
    for r in &records {
        store.put_approval(r).unwrap();
    }
    // Whole records round-trip.
    for r in &records {
        assert_eq!(store.approval(&r.id).unwrap().as_ref(), Some(r));
    }
    // Newest first; the same second by id, descending and byte-wise ("e" > "a" > "B").
    assert_eq!(
        ids(&store.approvals(None, 10).unwrap()),
        ["d", "e", "a", "B", "c"]
    );
    assert_eq!(ids(&store.approvals(None, 2).unwrap()), ["d", "e"]);
    assert_eq!(store.approvals(None, 0).unwrap(), vec![]);
    assert_eq!(
        ids(&store.approvals(None, usize::MAX).unwrap()),
        ["d", "e", "a", "B", "c"]
    );
    // An id is used once.
    assert_store_error(store.put_approval(&pending_record("a", 9)), "duplicate id");
    assert_eq!(store.approval("a").unwrap().as_ref(), Some(&records[0]));

    // Settling changes a pending request once; the second answer changes nothing.
    let approved = settled(&records[0], ApprovalStatus::Approved, "alice");
    assert!(store.settle_approval(&approved).unwrap());
    let denied = settled(&records[0], ApprovalStatus::Denied, "bob");
    assert!(!store.settle_approval(&denied).unwrap());
    assert_eq!(store.approval("a").unwrap(), Some(approved.clone()));
    assert!(
        !store
            .settle_approval(&settled(
                &pending_record("missing", 1),
                ApprovalStatus::Denied,
                "bob"
            ))
            .unwrap(),
        "nothing to settle"
    );
    let expired = settled(&records[2], ApprovalStatus::Expired, "broker");
    assert!(store.settle_approval(&expired).unwrap());
    let denied_b = settled(&records[1], ApprovalStatus::Denied, "bob");
    assert!(store.settle_approval(&denied_b).unwrap());
    assert!(
        !store
            .settle_approval(&settled(&records[1], ApprovalStatus::Approved, "alice"))
            .unwrap()
    );

    // Filtered by status, still newest first.
    assert_eq!(
        ids(&store.approvals(Some(ApprovalStatus::Pending), 10).unwrap()),
        ["d", "e"]
    );
    assert_eq!(
        ids(&store.approvals(Some(ApprovalStatus::Pending), 1).unwrap()),
        ["d"]
    );
    assert_eq!(
        store.approvals(Some(ApprovalStatus::Approved), 10).unwrap(),
        vec![approved]
    );
    assert_eq!(
        store.approvals(Some(ApprovalStatus::Denied), 10).unwrap(),
        vec![denied_b]
    );
    assert_eq!(
        store.approvals(Some(ApprovalStatus::Expired), 10).unwrap(),
        vec![expired]
    );
    assert_eq!(
        ids(&store.approvals(None, 10).unwrap()),
        ["d", "e", "a", "B", "c"]
    );
}

fn approvers(store: &dyn Store) {
    assert_eq!(store.approver("controller").unwrap(), None);
    store
        .put_approver("controller", "$argon2id$v=19$m=19456,t=2,p=1$one")
        .unwrap();
    assert_eq!(
        store.approver("controller").unwrap().as_deref(),
        Some("$argon2id$v=19$m=19456,t=2,p=1$one")
    );
    store
        .put_approver("controller", "$argon2id$v=19$m=19456,t=2,p=1$two")
        .unwrap();
    assert_eq!(
        store.approver("controller").unwrap().as_deref(),
        Some("$argon2id$v=19$m=19456,t=2,p=1$two")
    );
    assert_eq!(
        store.approver("Controller").unwrap(),
        None,
        "names are exact"
    );
}

fn sessions(store: &dyn Store) {
    assert_eq!(store.session("s1", 0).unwrap(), None);
    let s1 = session("s1", 100);
    store.put_session(&s1).unwrap();
    // Valid up to and including `expires_at`.
    assert_eq!(store.session("s1", 100).unwrap(), Some(s1.clone()));
    assert_eq!(store.session("s1", 101).unwrap(), None);
    // A session id is used once.
    assert_store_error(store.put_session(&session("s1", 500)), "duplicate session");
    assert_eq!(store.session("s1", 0).unwrap(), Some(s1));
    store.end_session("s1").unwrap();
    assert_eq!(store.session("s1", 0).unwrap(), None);
    store.end_session("never-existed").unwrap();

    // Pruning forgets sessions that ended before `now`.
    store.put_session(&session("s2", 10)).unwrap();
    store.put_session(&session("s3", 50)).unwrap();
    store.prune(50).unwrap();
    assert_eq!(store.session("s2", 0).unwrap(), None, "pruned");
    assert_eq!(store.session("s3", 0).unwrap(), Some(session("s3", 50)));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: a fresh schema per test.

fn postgres_url() -> String {
    std::env::var("AGENTIAM_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned())
}

/// The URL without its password, for messages.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(the connection string in AGENTIAM_TEST_POSTGRES_URL)".to_owned(),
    }
}

/// `url` with an `application_name`, to find the store's own connection on the server.
fn with_application_name(url: &str, name: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}application_name={name}")
    } else {
        format!("{url} application_name={name}")
    }
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

/// Runs `f` on a plain client of its own, on a thread of its own (the synchronous client must
/// not run on a tokio worker thread).
fn admin<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send + 'static,
) -> Result<T, String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)
            .map_err(|e| format!("cannot connect: {}", with_causes(&e)))?;
        f(&mut client).map_err(|e| with_causes(&e))
    })
    .join()
    .map_err(|_| "the admin thread panicked".to_owned())?
}

/// A uniquely named schema for one test, dropped (with everything in it) when the test ends,
/// whether it passed or not.
struct TestSchema {
    url: String,
    name: String,
}

impl TestSchema {
    fn new(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let url = postgres_url();
        if let Err(e) = admin(&url, |c| c.batch_execute("SELECT 1")) {
            panic!(
                "\n\nPostgreSQL is not reachable at {}: {e}\n\
                 The PostgreSQL store tests need a running server; they do not skip.\n\
                 Start it (e.g. `service postgresql start`, or `pg_ctlcluster 15 main start`),\n\
                 or point AGENTIAM_TEST_POSTGRES_URL at a server where the user may create schemas\n\
                 (default: {DEFAULT_POSTGRES_URL}).\n",
                shown(&url)
            );
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "agentiam_test_{label}_{}_{nanos}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        assert!(name.len() <= 63, "schema name too long: {name}");
        Self { url, name }
    }

    /// A store (a "replica") on this schema.
    fn store(&self) -> PostgresStore {
        self.store_at(&self.url)
    }

    fn store_at(&self, url: &str) -> PostgresStore {
        PostgresStore::connect_in_schema(url, &self.name).unwrap_or_else(|e| {
            panic!(
                "PostgresStore::connect_in_schema({}, {}): {e}",
                shown(url),
                self.name
            )
        })
    }

    /// Runs SQL statements with this schema first on the search path.
    fn sql(&self, sql: &str) {
        let batch = format!("SET search_path TO \"{}\"; {sql}", self.name);
        admin(&self.url, move |c| c.batch_execute(&batch)).unwrap();
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let drop_schema = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        if let Err(e) = admin(&self.url, move |c| c.batch_execute(&drop_schema)) {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The same checks on both stores.

#[test]
fn sqlite_store_conforms() {
    conformance(&SqliteStore::in_memory().unwrap());
}

#[test]
fn postgres_store_conforms() {
    let schema = TestSchema::new("conf");
    let store = schema.store();
    assert_eq!(store.schema(), Some(schema.name.as_str()));
    conformance(&store);
    // Connecting again to an existing schema keeps what is there.
    drop(store);
    let again = schema.store();
    assert_eq!(again.agents().unwrap().len(), 2);
    assert_eq!(again.approvals(None, 10).unwrap().len(), 5);
}

// ---------------------------------------------------------------------------------------------
// What a shared database must get right.

#[test]
fn postgres_replicas_share_state() {
    let schema = TestSchema::new("share");
    let (one, two) = (schema.store(), schema.store());
    let agent = agent_record("spiffe://acme.test/agent/shared", "read");
    one.put_agent(&agent).unwrap();
    assert_eq!(two.agent(&agent.spiffe_id).unwrap(), Some(agent));
    two.revoke(&Revocation::Token("jti-shared".into()), 100)
        .unwrap();
    assert!(
        one.is_revoked(&Revocation::Token("jti-shared".into()), 50)
            .unwrap()
    );
    let pending = pending_record("shared", 1);
    one.put_approval(&pending).unwrap();
    assert!(
        two.settle_approval(&settled(&pending, ApprovalStatus::Denied, "bob"))
            .unwrap()
    );
    assert_eq!(
        one.approval("shared").unwrap().unwrap().status,
        ApprovalStatus::Denied
    );
}

/// Runs `rounds` rounds; in each, `threads` threads per replica call `f(replica, round,
/// thread)` at once. Returns, per round, what each call answered.
fn race<T: Send + 'static>(
    replicas: &[Arc<PostgresStore>],
    threads: usize,
    rounds: usize,
    f: impl Fn(&PostgresStore, usize, usize) -> T + Send + Sync + 'static,
) -> Vec<Vec<T>> {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(replicas.len() * threads));
    let mut handles = vec![];
    for (r, replica) in replicas.iter().enumerate() {
        for t in 0..threads {
            let (replica, barrier, f) = (replica.clone(), barrier.clone(), f.clone());
            let thread = r * threads + t;
            handles.push(std::thread::spawn(move || {
                (0..rounds)
                    .map(|round| {
                        barrier.wait();
                        f(&replica, round, thread)
                    })
                    .collect::<Vec<T>>()
            }));
        }
    }
    let per_thread: Vec<Vec<T>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut per_round: Vec<Vec<T>> = (0..rounds).map(|_| vec![]).collect();
    for answers in per_thread {
        for (round, answer) in answers.into_iter().enumerate() {
            per_round[round].push(answer);
        }
    }
    per_round
}

#[test]
fn postgres_replicas_race_use_once_and_exactly_one_wins() {
    let schema = TestSchema::new("nonce");
    let replicas = [Arc::new(schema.store()), Arc::new(schema.store())];
    let per_round = race(&replicas, 4, 25, |store, round, _| {
        store
            .use_once(&format!("iss|race-{round}"), 1_000, 500)
            .unwrap()
    });
    for (round, answers) in per_round.iter().enumerate() {
        assert_eq!(answers.len(), 8);
        let winners = answers.iter().filter(|won| **won).count();
        assert_eq!(winners, 1, "round {round}: {answers:?}");
    }
    // Once expired, the key is up for grabs again, and again exactly one caller gets it.
    let per_round = race(&replicas, 4, 25, |store, round, _| {
        store
            .use_once(&format!("iss|race-{round}"), 2_000, 1_001)
            .unwrap()
    });
    for (round, answers) in per_round.iter().enumerate() {
        let winners = answers.iter().filter(|won| **won).count();
        assert_eq!(winners, 1, "expired, round {round}: {answers:?}");
    }
}

#[test]
fn postgres_replicas_race_settle_approval_and_exactly_one_wins() {
    let schema = TestSchema::new("settle");
    let replicas = [Arc::new(schema.store()), Arc::new(schema.store())];
    let rounds = 20;
    let pending: Vec<ApprovalRecord> = (0..rounds)
        .map(|i| pending_record(&format!("race-{i}"), 1))
        .collect();
    for p in &pending {
        replicas[0].put_approval(p).unwrap();
    }
    let shared = Arc::new(pending);
    let records = shared.clone();
    let per_round = race(&replicas, 3, rounds, move |store, round, thread| {
        let status = if thread % 2 == 0 {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Denied
        };
        let answer = settled(&records[round], status, &format!("approver-{thread}"));
        let won = store.settle_approval(&answer).unwrap();
        (won, answer)
    });
    for (round, answers) in per_round.iter().enumerate() {
        let winners: Vec<&ApprovalRecord> = answers
            .iter()
            .filter(|(won, _)| *won)
            .map(|(_, r)| r)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}");
        // The stored record is the winner's, whole.
        let stored = replicas[1].approval(&shared[round].id).unwrap().unwrap();
        assert_eq!(&stored, winners[0], "round {round}");
    }
    assert_eq!(
        replicas[0]
            .approvals(Some(ApprovalStatus::Pending), 100)
            .unwrap(),
        vec![]
    );
}

#[test]
fn postgres_replicas_starting_at_once_create_the_schema_once() {
    let schema = TestSchema::new("start");
    let url = schema.url.clone();
    let name = schema.name.clone();
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (url, name, barrier) = (url.clone(), name.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                PostgresStore::connect_in_schema(&url, &name).map(|_| ())
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let store = schema.store();
    assert!(store.use_once("k", 10, 0).unwrap());
}

#[test]
fn postgres_refuses_a_newer_schema() {
    let schema = TestSchema::new("newer");
    let store = schema.store();
    store
        .put_agent(&agent_record("spiffe://acme.test/agent/kept", "read"))
        .unwrap();
    drop(store);
    schema.sql("UPDATE agentiam_schema SET version = version + 1");
    match PostgresStore::connect_in_schema(&schema.url, &schema.name) {
        Ok(_) => panic!("a store written by a newer broker was opened"),
        Err(e) => {
            assert_eq!(e.code(), "broker.store_unavailable");
            assert!(e.to_string().contains("schema version 2"), "{e}");
        }
    }
    // Refusing changed nothing; with the version back, the data is there.
    schema.sql("UPDATE agentiam_schema SET version = version - 1");
    let store = schema.store();
    assert_eq!(store.agents().unwrap().len(), 1);
}

#[test]
fn postgres_reconnects_after_losing_its_connection() {
    let schema = TestSchema::new("reconnect");
    let app = format!(
        "agentiam_{}",
        schema.name.trim_start_matches("agentiam_test_")
    );
    let store = schema.store_at(&with_application_name(&schema.url, &app));
    let agent = agent_record("spiffe://acme.test/agent/survivor", "read");
    store.put_agent(&agent).unwrap();
    for attempt in 0..3 {
        let app = app.clone();
        let killed = admin(&schema.url, move |c| {
            c.query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = $1",
                &[&app],
            )
            .map(|row| row.get::<_, i64>(0))
        })
        .unwrap();
        assert_eq!(killed, 1, "attempt {attempt}: the store's connection");
        std::thread::sleep(Duration::from_millis(50));
        // The next call finds the connection gone, opens another and succeeds.
        assert_eq!(store.agent(&agent.spiffe_id).unwrap(), Some(agent.clone()));
        assert!(store.use_once(&format!("after-{attempt}"), 10, 0).unwrap());
    }
}

#[test]
fn postgres_connection_errors_are_store_errors() {
    // Nothing listens on port 1; an error, quickly, never a panic, and it says why.
    let e = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test?connect_timeout=2")
        .unwrap_err();
    assert_eq!(e.code(), "broker.store_unavailable");
    assert!(
        e.to_string().contains("error connecting to server: "),
        "{e}"
    );
    assert_store_error(
        PostgresStore::connect("postgres://[not a url"),
        "invalid URL",
    );
    assert_store_error(
        PostgresStore::connect_in_schema(&postgres_url(), ""),
        "empty schema name",
    );
    assert_store_error(
        PostgresStore::connect_in_schema(&postgres_url(), &"x".repeat(64)),
        "schema name too long",
    );
}

#[test]
fn postgres_store_errors_after_connecting_are_store_errors() {
    let schema = TestSchema::new("errors");
    let store = schema.store();
    // The tables vanish under a running broker: every call is a store error, not a panic.
    schema.sql("DROP TABLE agents; DROP TABLE used_once;");
    let e = store.agents().unwrap_err();
    assert_eq!(e.code(), "broker.store_unavailable");
    assert!(e.to_string().contains("42P01"), "undefined table: {e}");
    assert_store_error(store.use_once("k", 10, 0), "use_once without a table");
    // A server error names its SQLSTATE but does not quote the row (store errors reach HTTP
    // clients).
    store.put_approval(&pending_record("dup-id", 1)).unwrap();
    let e = store
        .put_approval(&pending_record("dup-id", 1))
        .unwrap_err();
    assert!(e.to_string().contains("23505"), "unique violation: {e}");
    assert!(
        !e.to_string().contains("dup-id"),
        "row value in the error: {e}"
    );
    // PostgreSQL text cannot hold NUL (SQLite's can): such a key is refused, as a store error.
    assert_store_error(
        store.is_revoked(&Revocation::Token("a\0b".into()), 0),
        "NUL",
    );
    // The connection is still good for what is still there.
    store.put_approver("controller", "hash").unwrap();
    assert_eq!(
        store.approver("controller").unwrap().as_deref(),
        Some("hash")
    );
}

// ---------------------------------------------------------------------------------------------
// Called from async handlers, as the broker does.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_works_inside_a_multi_thread_runtime() {
    let schema = TestSchema::new("tokio");
    // Connecting, calling and dropping all happen on tokio worker threads.
    let store: Arc<dyn Store> = Arc::new(schema.store());
    assert!(store.use_once("iss|async", 100, 0).unwrap());
    assert!(!store.use_once("iss|async", 100, 0).unwrap());
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .put_agent(&agent_record(
                        &format!("spiffe://acme.test/agent/task-{i:02}"),
                        "read",
                    ))
                    .unwrap();
                tokio::task::yield_now().await;
                store.use_once(&format!("iss|task-{i}"), 100, 0).unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap());
    }
    assert_eq!(store.agents().unwrap().len(), 16);
    drop(store);
}

// ---------------------------------------------------------------------------------------------
// Replicas sharing sealed keys through PostgreSQL.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_sealed_keys_and_see_each_others_rotations() {
    use agentiam_broker::{DataDir, KeyEncryptionKey, TokensConfig};
    use base64::Engine as _;
    let schema = TestSchema::new("keys");
    let kek = |byte: u8| {
        KeyEncryptionKey::from_base64(&base64::engine::general_purpose::STANDARD.encode([byte; 32]))
            .unwrap()
    };
    let replica = |dir: &std::path::Path, key: u8| {
        DataDir::open(dir).unwrap().broker_shared(
            "https://broker.test",
            "admin-secret-0123456789-abcdefghijklmnop",
            &TokensConfig::default(),
            Arc::new(schema.store()),
            kek(key),
        )
    };
    let (dir_a, dir_b, dir_c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = replica(dir_a.path(), 42).unwrap();
    let b = replica(dir_b.path(), 42).unwrap();
    // B adopted what A sealed: one signing key, one approver key for both.
    assert_eq!(a.jwks().to_json(), b.jwks().to_json());
    assert_eq!(a.approver_public_key().kid(), b.approver_public_key().kid());
    let own_b = DataDir::open(dir_b.path()).unwrap().signing_key().unwrap();
    assert!(
        b.jwks().find(own_b.kid()).is_none(),
        "B's own file key is not used"
    );
    // The store holds the keys sealed, never in clear: an envelope of nonce and ciphertext, and
    // none of the keys' 43-character public values (which a clear JWK would carry) in it. (Short
    // markers such as "OKP" turn up in random base64 by chance.)
    let (version, sealed) = schema.store().key_material().unwrap().unwrap();
    assert_eq!(version, 1);
    let envelope: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&sealed).unwrap();
    let mut fields: Vec<&str> = envelope.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["ciphertext", "nonce"]);
    let jwks: serde_json::Value = serde_json::from_str(&a.jwks().to_json()).unwrap();
    let public_values: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|key| key["x"].as_str())
        .collect();
    assert!(!public_values.is_empty());
    for x in public_values {
        assert_eq!(x.len(), 43);
        assert!(!sealed.contains(x), "{sealed}");
    }

    // A rotation on A reaches B at its next read; the retired key stays published.
    let first = a.jwks().keys()[0].kid().to_owned();
    let rotated = a.rotate_signing_key().unwrap();
    assert!(b.sync_shared_keys().unwrap());
    assert!(
        !b.sync_shared_keys().unwrap(),
        "nothing new the second time"
    );
    assert_eq!(b.jwks().keys()[0].kid(), rotated);
    assert!(b.jwks().find(&first).is_some());
    // Both rotate at once: both succeed, one after the other, and agree afterwards.
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.rotate_signing_key().unwrap());
        let tb = s.spawn(|| b.rotate_signing_key().unwrap());
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_ne!(ra, rb);
    a.sync_shared_keys().unwrap();
    b.sync_shared_keys().unwrap();
    assert_eq!(a.jwks().to_json(), b.jwks().to_json());
    assert_eq!(schema.store().key_material().unwrap().unwrap().0, 4);
    assert_eq!(
        a.jwks().keys().len(),
        4,
        "the active key and three retired ones"
    );

    // A replica with another key-encryption key cannot open them, and does not start.
    let err = replica(dir_c.path(), 7).unwrap_err();
    assert_eq!(err.code(), "broker.config_invalid");
}
