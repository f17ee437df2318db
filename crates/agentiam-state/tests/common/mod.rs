//! One set of behaviour checks for every [`SharedState`], written once and run against each
//! backend: [`conformance`] (every semantic of the trait, and a replay against the in-process
//! reference), [`race_spend`], [`race_spend_chains`] and [`race_use_once`] (workers racing,
//! each on its own connection), and [`prune_drops_only_expired`].
//!
//! Times are the real clock's: the Redis backend also lets the server expire keys by its own
//! clock, so the suite uses times near it, as production does.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    unreachable_pub,
    reason = "a harness several test binaries share, each using part of it; a panic fails a test"
)]

use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{SystemTime, UNIX_EPOCH};

use agentiam_state::{
    Counter, InProcessState, MAX_KEY_LEN, MAX_TAINT_SOURCES, MAX_TASK_FINGERPRINTS, SharedState,
    StateError, TaskTaint,
};

/// Seconds since the epoch, now.
pub fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    i64::try_from(secs).unwrap()
}

/// A name no other test run uses: process id, time and a counter.
pub fn unique(label: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{label}_{}_{nanos}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// `url` with its password, if any, replaced by `***`, for messages.
pub fn shown(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if scheme + 3 < at => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn budget(key: &str, limit: u64) -> Counter {
    Counter::new(key, limit)
}

fn spend(state: &dyn SharedState, counters: &[Counter], expires_at: i64, now: i64) -> bool {
    state
        .spend(counters, expires_at, now)
        .unwrap_or_else(|e| panic!("{state:?}: spend({counters:?}): {e}"))
}

fn use_once(state: &dyn SharedState, key: &str, expires_at: i64, now: i64) -> bool {
    state
        .use_once(key, expires_at, now)
        .unwrap_or_else(|e| panic!("{state:?}: use_once({key:?}): {e}"))
}

fn taint(state: &dyn SharedState, task: &str, now: i64) -> TaskTaint {
    state
        .task_taint(task, now)
        .unwrap_or_else(|e| panic!("{state:?}: task_taint({task:?}): {e}"))
}

fn extend(state: &dyn SharedState, task: &str, add: &TaskTaint, expires_at: i64, now: i64) {
    state
        .extend_task_taint(task, add, expires_at, now)
        .unwrap_or_else(|e| panic!("{state:?}: extend_task_taint({task:?}): {e}"));
}

fn sources<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> TaskTaint {
    let mut t = TaskTaint::default();
    for name in names {
        t.add_source(name);
    }
    t
}

fn fingerprints(fps: impl IntoIterator<Item = u64>) -> TaskTaint {
    let mut t = TaskTaint::default();
    t.add_fingerprints(fps);
    t
}

fn assert_state_error<T: Debug>(result: Result<T, StateError>, what: &str) {
    match result {
        Err(e) => assert_eq!(e.code(), "guard.state_unavailable", "{what}: {e}"),
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
    }
}

/// Every semantic of [`SharedState`]; `state` must be empty.
pub fn conformance(state: &dyn SharedState) {
    let t = now();
    use_once_is_once_until_expiry(state, t);
    spend_is_all_or_none(state, t);
    budgets_expire_and_never_shorten(state, t);
    taint_is_a_union_kept_until_expiry(state, t);
    taint_caps_apply_as_in_memory(state, t);
    bad_keys_are_errors(state, t);
    matches_the_in_process_reference(state, t);
}

fn use_once_is_once_until_expiry(s: &dyn SharedState, t: i64) {
    assert!(use_once(s, "once:a", t + 10, t), "the first use");
    assert!(!use_once(s, "once:a", t + 10, t), "a second use");
    assert!(
        !use_once(s, "once:a", t + 99, t + 5),
        "used until it expires"
    );
    assert!(
        !use_once(s, "once:a", t + 99, t + 10),
        "still used in its expiry second"
    );
    // Had a refused call moved the expiry to t + 99, this would be refused too.
    assert!(
        use_once(s, "once:a", t + 30, t + 11),
        "an expired marker is taken over"
    );
    assert!(
        !use_once(s, "once:a", t + 99, t + 30),
        "taken over until its new expiry"
    );
    assert!(use_once(s, "once:b", t + 10, t), "keys are independent");
    let longest = "k".repeat(MAX_KEY_LEN);
    assert!(use_once(s, &longest, t + 10, t), "the longest key");
    assert!(!use_once(s, &longest, t + 10, t));
    // Keys are compared exactly (no case folding, no trimming).
    assert!(use_once(s, "once:A", t + 10, t));
    assert!(use_once(s, "once:a ", t + 10, t));
}

fn spend_is_all_or_none(s: &dyn SharedState, t: i64) {
    let until = t + 600;
    let child = budget("budget:child", 2);
    let parent = budget("budget:parent", 3);
    let sibling = budget("budget:sibling", 4);
    assert!(spend(s, &[child.clone(), parent.clone()], until, t));
    assert!(spend(s, &[child.clone(), parent.clone()], until, t));
    assert!(
        !spend(s, &[child.clone(), parent.clone()], until, t),
        "the child's budget of 2 is spent"
    );
    // The refused spends counted against neither budget.
    assert!(
        !spend(s, &[sibling.clone(), child.clone()], until, t),
        "spent child"
    );
    assert!(!spend(s, &[child.clone(), sibling.clone()], until, t));
    assert!(spend(s, std::slice::from_ref(&parent), until, t), "3rd");
    assert!(!spend(s, std::slice::from_ref(&parent), until, t));
    for i in 0..4 {
        assert!(
            spend(s, std::slice::from_ref(&sibling), until, t),
            "sibling call {i}"
        );
    }
    assert!(!spend(s, std::slice::from_ref(&sibling), until, t));

    // A limit of 0 allows nothing, and blocks the other budgets of the same call.
    let zero = budget("budget:zero", 0);
    let fresh = budget("budget:fresh", 1);
    assert!(!spend(s, std::slice::from_ref(&zero), until, t));
    assert!(!spend(s, &[fresh.clone(), zero], until, t));
    assert!(spend(s, std::slice::from_ref(&fresh), until, t));
    assert!(!spend(s, &[fresh], until, t));

    assert!(spend(s, &[], until, t), "no budgets: nothing to refuse");
    let huge = budget("budget:huge", u64::MAX);
    assert!(spend(s, std::slice::from_ref(&huge), until, t));
    assert!(spend(s, &[huge], until, t));
}

fn budgets_expire_and_never_shorten(s: &dyn SharedState, t: i64) {
    let short = budget("budget:short", 1);
    assert!(spend(s, std::slice::from_ref(&short), t + 10, t));
    assert!(
        !spend(s, std::slice::from_ref(&short), t + 10, t + 10),
        "live in its expiry second"
    );
    assert!(
        spend(s, std::slice::from_ref(&short), t + 50, t + 11),
        "an expired budget starts again"
    );
    assert!(!spend(s, &[short], t + 50, t + 20));

    // A later spend with an earlier expiry does not shorten the budget's life.
    let long = budget("budget:long", 2);
    assert!(spend(s, std::slice::from_ref(&long), t + 100, t));
    assert!(spend(s, std::slice::from_ref(&long), t + 10, t));
    assert!(
        !spend(s, std::slice::from_ref(&long), t + 200, t + 50),
        "still spent at t+50: the expiry stayed t+100"
    );
    assert!(
        !spend(s, std::slice::from_ref(&long), t + 200, t + 100),
        "and in its expiry second"
    );
    assert!(spend(s, &[long], t + 200, t + 101), "expired after t+100");
}

fn taint_is_a_union_kept_until_expiry(s: &dyn SharedState, t: i64) {
    assert_eq!(taint(s, "task:none", t), TaskTaint::default());
    assert!(!taint(s, "task:none", t).is_tainted());

    let mut first = sources(["web_fetch"]);
    first.add_fingerprints([1, 2, u64::MAX, 1 << 63]);
    extend(s, "task:1", &first, t + 100, t);
    assert_eq!(taint(s, "task:1", t), first);

    let mut second = sources(["email", "web_fetch"]);
    second.add_fingerprints([2, 3]);
    // An earlier expiry: the union is kept until the later one.
    extend(s, "task:1", &second, t + 10, t);
    let mut union = first.clone();
    union.merge(&second);
    assert_eq!(taint(s, "task:1", t), union);
    assert_eq!(taint(s, "task:1", t + 50), union, "the expiry stayed t+100");
    assert_eq!(
        taint(s, "task:1", t + 100),
        union,
        "live in its expiry second"
    );
    assert_eq!(taint(s, "task:1", t + 101), TaskTaint::default(), "expired");

    // After expiry the task starts again from what is added then.
    let third = sources(["pdf"]);
    extend(s, "task:1", &third, t + 200, t + 101);
    assert_eq!(taint(s, "task:1", t + 101), third);

    // Taint without a named source, and an overflow flag, are kept.
    let flagged = TaskTaint {
        tainted: true,
        ..TaskTaint::default()
    };
    extend(s, "task:flag", &flagged, t + 100, t);
    assert_eq!(taint(s, "task:flag", t), flagged);
    assert!(taint(s, "task:flag", t).is_tainted());
    let overflowed = TaskTaint {
        overflowed: true,
        ..TaskTaint::default()
    };
    extend(s, "task:flag", &overflowed, t + 100, t);
    let both = TaskTaint {
        tainted: true,
        overflowed: true,
        ..TaskTaint::default()
    };
    assert_eq!(taint(s, "task:flag", t), both);

    // Adding nothing still keeps the task until the given expiry.
    extend(s, "task:empty", &TaskTaint::default(), t + 100, t);
    extend(s, "task:empty", &first, t + 10, t);
    assert_eq!(taint(s, "task:empty", t + 50), first);

    // Tasks are independent.
    assert_eq!(taint(s, "task:2", t), TaskTaint::default());
}

fn taint_caps_apply_as_in_memory(s: &dyn SharedState, t: i64) {
    let until = t + 600;
    // Sources: 60 stored, then 15 offered of which 5 are stored already: 4 fit.
    let mut model = TaskTaint::default();
    for add in [
        sources((0..60).map(|i| format!("src-{i:02}"))),
        sources((55..70).map(|i| format!("src-{i:02}"))),
    ] {
        extend(s, "task:cap-sources", &add, until, t);
        model.merge(&add);
    }
    assert_eq!(model.sources.len(), MAX_TAINT_SOURCES);
    assert!(model.tainted);
    assert_eq!(taint(s, "task:cap-sources", t), model);

    // Full, then a source already stored is offered: `merge` marks the task tainted.
    let mut model = TaskTaint::default();
    for add in [
        sources((0..MAX_TAINT_SOURCES).map(|i| format!("src-{i:02}"))),
        sources(["src-00"]),
    ] {
        extend(s, "task:cap-sources-full", &add, until, t);
        model.merge(&add);
    }
    assert!(model.tainted);
    assert_eq!(taint(s, "task:cap-sources-full", t), model);

    // Fingerprints: 6 short of the cap, then 15 offered of which 5 are stored already.
    let max = MAX_TASK_FINGERPRINTS as u64;
    let mut model = TaskTaint::default();
    for add in [fingerprints(0..max - 6), fingerprints(max - 11..max + 4)] {
        extend(s, "task:cap-fingerprints", &add, until, t);
        model.merge(&add);
    }
    assert_eq!(model.fingerprints.len(), MAX_TASK_FINGERPRINTS);
    assert!(model.overflowed);
    assert_eq!(taint(s, "task:cap-fingerprints", t), model);

    // Exactly full is not overflowed; then one already stored is offered: overflowed.
    let mut model = TaskTaint::default();
    let full = fingerprints(0..max);
    extend(s, "task:cap-fingerprints-full", &full, until, t);
    model.merge(&full);
    assert!(!model.overflowed);
    assert_eq!(taint(s, "task:cap-fingerprints-full", t), model);
    let again = fingerprints([7]);
    extend(s, "task:cap-fingerprints-full", &again, until, t);
    model.merge(&again);
    assert!(model.overflowed);
    assert_eq!(taint(s, "task:cap-fingerprints-full", t), model);
}

fn bad_keys_are_errors(s: &dyn SharedState, t: i64) {
    let good = budget("budget:beside-a-bad-key", 1);
    for bad in [String::new(), "k".repeat(MAX_KEY_LEN + 1)] {
        let len = bad.len();
        assert_state_error(
            s.use_once(&bad, t + 10, t),
            &format!("use_once, {len} bytes"),
        );
        assert_state_error(
            s.spend(&[budget(&bad, 5)], t + 10, t),
            &format!("spend, {len} bytes"),
        );
        assert_state_error(
            s.spend(&[good.clone(), budget(&bad, 5)], t + 10, t),
            &format!("spend beside a good key, {len} bytes"),
        );
        assert_state_error(s.task_taint(&bad, t), &format!("task_taint, {len} bytes"));
        assert_state_error(
            s.extend_task_taint(&bad, &sources(["x"]), t + 10, t),
            &format!("extend_task_taint, {len} bytes"),
        );
    }
    // The good budget beside the bad keys was not counted.
    assert!(spend(s, std::slice::from_ref(&good), t + 10, t));
    assert!(!spend(s, &[good], t + 10, t));
}

/// One operation of the replayed corpus.
#[derive(Debug, Clone)]
enum Op {
    UseOnce(&'static str, i64, i64),
    Spend(Vec<Counter>, i64, i64),
    Extend(&'static str, TaskTaint, i64, i64),
    Read(&'static str, i64),
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Bool(bool),
    Taint(TaskTaint),
    Done,
    Error(&'static str),
}

fn apply(state: &dyn SharedState, op: &Op) -> Outcome {
    let outcome = match op {
        Op::UseOnce(key, until, now) => state.use_once(key, *until, *now).map(Outcome::Bool),
        Op::Spend(counters, until, now) => state.spend(counters, *until, *now).map(Outcome::Bool),
        Op::Extend(task, add, until, now) => state
            .extend_task_taint(task, add, *until, *now)
            .map(|()| Outcome::Done),
        Op::Read(task, now) => state.task_taint(task, *now).map(Outcome::Taint),
    };
    outcome.unwrap_or_else(|e| Outcome::Error(e.code()))
}

/// Replays corner cases the trait's documentation leaves to the reference (the in-process
/// state): the backend must answer each exactly as it does.
fn matches_the_in_process_reference(s: &dyn SharedState, t: i64) {
    let dup = budget("diff:dup", 3);
    let other = budget("diff:other", 5);
    let old = budget("diff:old", 2);
    let ops = vec![
        // The same budget twice in one call: checked once, counted twice.
        Op::Spend(vec![dup.clone(), dup.clone()], t + 100, t),
        Op::Spend(vec![dup.clone(), other.clone(), dup.clone()], t + 100, t),
        Op::Spend(vec![dup.clone()], t + 100, t),
        Op::Spend(vec![other.clone()], t + 100, t),
        // An expiry already past (the entry is dead as soon as it is written).
        Op::Spend(vec![old.clone()], t - 5, t),
        Op::Spend(vec![old.clone()], t - 5, t),
        Op::Spend(vec![old.clone(), old.clone()], t - 5, t),
        Op::Spend(vec![old.clone()], t + 100, t),
        Op::Spend(vec![old.clone()], t + 100, t),
        Op::Spend(vec![old], t + 100, t),
        Op::UseOnce("diff:once", t - 5, t),
        Op::UseOnce("diff:once", t + 5, t),
        Op::UseOnce("diff:once", t + 5, t),
        Op::Extend("diff:task", sources(["a"]), t - 5, t),
        Op::Read("diff:task", t),
        Op::Read("diff:task", t - 5),
        Op::Extend("diff:task", sources(["b"]), t + 5, t),
        Op::Read("diff:task", t),
        Op::Extend("diff:task", fingerprints([9, 8]), t + 1, t + 5),
        Op::Read("diff:task", t + 5),
        Op::Read("diff:task", t + 6),
    ];
    let reference = InProcessState::default();
    for (i, op) in ops.iter().enumerate() {
        let expected = apply(&reference, op);
        let got = apply(s, op);
        assert_eq!(got, expected, "{s:?}: step {i}: {op:?}");
    }
}

/// Eight workers, each with its own handle from `open` (its own connection), spend against one
/// budget of 50, 200 attempts in all: exactly 50 succeed.
pub fn race_spend(open: &dyn Fn() -> Arc<dyn SharedState>) {
    const WORKERS: usize = 8;
    const ATTEMPTS: usize = 25;
    let states: Vec<Arc<dyn SharedState>> = (0..WORKERS).map(|_| open()).collect();
    let t = now();
    let limit = budget("race:budget", 50);
    let start = Barrier::new(WORKERS);
    let won = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for state in &states {
            let (limit, start, won) = (&limit, &start, &won);
            scope.spawn(move || {
                start.wait();
                for _ in 0..ATTEMPTS {
                    if spend(state.as_ref(), std::slice::from_ref(limit), t + 600, t) {
                        won.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    assert_eq!(
        won.load(Ordering::Relaxed),
        50,
        "{:?}: {} attempts against a budget of 50",
        states[0],
        WORKERS * ATTEMPTS
    );
    assert!(!spend(states[0].as_ref(), &[limit], t + 600, t));
}

/// Eight workers, each with its own handle, spend along budget chains: each its own child
/// budget of 10 and one shared parent budget of 50, listed child-first by half of them and
/// parent-first by the others (no deadlock, whatever the order). 200 attempts: exactly 50
/// succeed, and no child counted a call its parent refused.
pub fn race_spend_chains(open: &dyn Fn() -> Arc<dyn SharedState>) {
    const WORKERS: usize = 8;
    const ATTEMPTS: usize = 25;
    let states: Vec<Arc<dyn SharedState>> = (0..WORKERS).map(|_| open()).collect();
    let t = now();
    let parent = budget("race:chain-parent", 50);
    let start = Barrier::new(WORKERS);
    let won: Vec<AtomicUsize> = (0..WORKERS).map(|_| AtomicUsize::new(0)).collect();
    std::thread::scope(|scope| {
        for (i, state) in states.iter().enumerate() {
            let (parent, start, won) = (&parent, &start, &won[i]);
            scope.spawn(move || {
                let child = budget(&format!("race:chain-child-{i}"), 10);
                let chain = if i % 2 == 0 {
                    [child, parent.clone()]
                } else {
                    [parent.clone(), child]
                };
                start.wait();
                for _ in 0..ATTEMPTS {
                    if spend(state.as_ref(), &chain, t + 600, t) {
                        won.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let total: usize = won.iter().map(|w| w.load(Ordering::Relaxed)).sum();
    assert_eq!(total, 50, "{:?}: the parent's budget", states[0]);
    for (i, w) in won.iter().enumerate() {
        let w = w.load(Ordering::Relaxed);
        assert!(w <= 10, "worker {i} won {w} of its child's 10");
        // All or none: the child counted exactly the calls that went through.
        let child = budget(&format!("race:chain-child-{i}"), 10);
        let mut left = 0;
        while spend(states[0].as_ref(), std::slice::from_ref(&child), t + 600, t) {
            left += 1;
        }
        assert_eq!(left, 10 - w, "child {i}");
    }
}

/// Eight workers, each with its own handle, race for one single-use key: exactly one wins.
pub fn race_use_once(open: &dyn Fn() -> Arc<dyn SharedState>) {
    const WORKERS: usize = 8;
    let states: Vec<Arc<dyn SharedState>> = (0..WORKERS).map(|_| open()).collect();
    let t = now();
    let start = Barrier::new(WORKERS);
    let won = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for state in &states {
            let (start, won) = (&start, &won);
            scope.spawn(move || {
                start.wait();
                if use_once(state.as_ref(), "race:nonce", t + 600, t) {
                    won.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(won.load(Ordering::Relaxed), 1, "{:?}", states[0]);
}

/// `prune(now)` drops what expired before `now` (one marker, one budget, one task here) and
/// nothing live; a pruned task comes back empty, without its old sources or fingerprints.
pub fn prune_drops_only_expired(state: &dyn SharedState, prune: &dyn Fn(i64) -> u64) {
    let t = now();
    let mut old_taint = sources(["old-source"]);
    old_taint.add_fingerprints([1, 2, 3]);
    assert!(use_once(state, "prune:old", t + 10, t));
    assert!(use_once(state, "prune:live", t + 100, t));
    assert!(spend(state, &[budget("prune:old", 1)], t + 10, t));
    assert!(spend(state, &[budget("prune:live", 1)], t + 100, t));
    extend(state, "prune:old", &old_taint, t + 10, t);
    extend(state, "prune:live", &old_taint, t + 100, t);

    assert_eq!(prune(t + 50), 3, "one marker, one budget, one task expired");
    assert_eq!(prune(t + 50), 0, "nothing left to prune");

    // Asked as of `t`, a pruned entry is gone; a live one is still there.
    assert!(use_once(state, "prune:old", t + 10, t), "pruned marker");
    assert!(!use_once(state, "prune:live", t + 100, t), "live marker");
    assert!(
        spend(state, &[budget("prune:old", 1)], t + 10, t),
        "pruned budget"
    );
    assert!(
        !spend(state, &[budget("prune:live", 1)], t + 100, t),
        "live budget"
    );
    assert_eq!(taint(state, "prune:old", t), TaskTaint::default());
    assert_eq!(taint(state, "prune:live", t), old_taint);
    let new_taint = sources(["new-source"]);
    extend(state, "prune:old", &new_taint, t + 10, t);
    assert_eq!(
        taint(state, "prune:old", t),
        new_taint,
        "nothing old came back"
    );
}
