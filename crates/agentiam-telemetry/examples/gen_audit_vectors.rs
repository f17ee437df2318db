//! Writes `testvectors/audit_log.json`: a small sealed log, its signed checkpoint, and edits an
//! attacker (or a bad disk) could make, each with the code and first bad sequence number that
//! `agentiam audit verify` must report. Read by `cargo test` and by pytest (through the CLI).
//!
//! ```text
//! cargo run -p agentiam-telemetry --example gen_audit_vectors > testvectors/audit_log.json
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "a generator run by developers"
)]

use agentiam_telemetry::*;
use serde_json::{Value, json};

const ORIGIN: &str = "agentiam.test/audit";

fn event(i: u64) -> AuditEvent {
    let mut e = AuditEvent::new(
        "tool_call",
        AgentRef {
            spiffe_id: "spiffe://acme.test/agent/reconciler".into(),
            composite_digest: Some(format!("sha256:{}", "ab".repeat(32))),
        },
        1_800_000_000_000 + i as i64 * 1000,
        if i == 3 {
            Decision::deny("guard.constraint_violated")
        } else {
            Decision::allow()
        },
    );
    e.event_id = format!("0190f3a0-0000-7000-8000-{i:012}");
    e.task_id = Some("task-42".into());
    e.tool = Some(
        RedactionPolicy::default()
            .tool_call(
                "approve_payment",
                Some(&format!("call-{i}")),
                &json!({"amount": 100 * i, "currency": "USD", "api_key": "sk-live"}),
            )
            .unwrap(),
    );
    e.data_accessed = vec![format!("invoice:{i}")];
    e
}

fn segment_lines(store: &MemStore) -> Vec<String> {
    let bytes = store.read(0).unwrap();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Re-seals lines from `from` on: recomputes hashes and prev links, as an attacker who knows
/// the format (but not the checkpoint key) would.
fn reseal(lines: &[String], from: usize) -> Vec<String> {
    let mut out: Vec<String> = lines[..from].to_vec();
    let mut prev = if from == 0 {
        "0".repeat(64)
    } else {
        serde_json::from_str::<Value>(&out[from - 1]).unwrap()["hash"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (i, line) in lines.iter().enumerate().skip(from) {
        let v: Value = serde_json::from_str(line).unwrap();
        let event = serde_json_canonicalizer::to_string(&v["event"]).unwrap();
        let body = format!(r#"{{"event":{event},"prev":"{prev}","seq":{i}}}"#);
        let hash: String = merkle::leaf_hash(body.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        out.push(format!(
            r#"{{"event":{event},"hash":"{hash}","prev":"{prev}","seq":{i}}}"#
        ));
        prev = hash;
    }
    out
}

fn edit_event(line: &str, f: impl FnOnce(&mut Value)) -> String {
    let mut v: Value = serde_json::from_str(line).unwrap();
    f(&mut v["event"]);
    serde_json_canonicalizer::to_string(&v).unwrap()
}

fn main() {
    println!("{}", serde_json::to_string_pretty(&document()).unwrap());
}

/// The vector document (also built by the crate's `vectors_fresh` test, which checks that the
/// committed file is what this generator writes).
pub(crate) fn document() -> serde_json::Value {
    let store = MemStore::new();
    let signer = NoteSigner::generate(ORIGIN).unwrap();
    let other = NoteSigner::generate(ORIGIN).unwrap();
    let log = AuditLog::open(
        store.clone(),
        LogConfig::new(ORIGIN),
        Some(NoteSigner::from_private_key(&signer.private_key().unwrap()).unwrap()),
    )
    .unwrap();
    for i in 0..6 {
        log.append(event(i)).unwrap();
    }
    let checkpoint = log.close().unwrap().unwrap();
    let base = segment_lines(&store);

    let mut tests = Vec::new();
    let mut add = |comment: &str,
                   flags: &[&str],
                   lines: Vec<String>,
                   with_checkpoint: Option<String>,
                   error: Option<(&str, u64)>,
                   partial_tail: bool| {
        let mut text = lines.join("\n");
        if !partial_tail && !lines.is_empty() {
            text.push('\n');
        }
        let mut t = json!({
            "tcId": tests.len() + 1,
            "comment": comment,
            "flags": flags,
            "segment": text,
            "checkpoint": with_checkpoint,
            "result": if error.is_some() { "invalid" } else { "valid" },
        });
        if let Some((code, seq)) = error {
            t["error"] = code.into();
            t["seq"] = seq.into();
        }
        tests.push(t);
    };
    let cp = Some(checkpoint.clone());

    add(
        "The sealed log with its checkpoint",
        &["Valid"],
        base.clone(),
        cp.clone(),
        None,
        false,
    );
    add(
        "The sealed log without a checkpoint",
        &["Valid"],
        base.clone(),
        None,
        None,
        false,
    );
    let mut longer = base.clone();
    longer.push(edit_event(&base[5], |e| {
        e["event_id"] = json!("0190f3a0-0000-7000-8000-000000000006")
    }));
    add(
        "A checkpoint of an earlier size still verifies a longer log",
        &["Valid"],
        reseal(&longer, 6),
        cp.clone(),
        None,
        false,
    );

    let mut changed = base.clone();
    changed[2] = edit_event(&changed[2], |e| {
        e["tool"]["args"]["amount"] = json!(999_999)
    });
    add(
        "A tool argument changed",
        &["ChangedField"],
        changed.clone(),
        cp.clone(),
        Some(("audit.tampered", 2)),
        false,
    );
    let mut decision = base.clone();
    decision[3] = edit_event(&decision[3], |e| {
        e["decision"] = json!({"outcome": "allow"})
    });
    add(
        "A denial rewritten as an allow",
        &["ChangedField"],
        decision,
        None,
        Some(("audit.tampered", 3)),
        false,
    );
    add(
        "A changed field with its own hash recomputed",
        &["Rehashed"],
        {
            let mut l = reseal(&changed, 2);
            l[3] = base[3].clone();
            l[4] = base[4].clone();
            l[5] = base[5].clone();
            l
        },
        None,
        Some(("audit.tampered", 3)),
        false,
    );
    add(
        "History rewritten and re-chained, no checkpoint: undetectable without one",
        &["Rewritten", "NeedsCheckpoint"],
        reseal(&changed, 2),
        None,
        None,
        false,
    );
    add(
        "History rewritten and re-chained, checked against the checkpoint",
        &["Rewritten"],
        reseal(&changed, 2),
        cp.clone(),
        Some(("audit.tampered", 0)),
        false,
    );

    let mut deleted = base.clone();
    deleted.remove(3);
    add(
        "A record deleted",
        &["Deleted"],
        deleted.clone(),
        cp.clone(),
        Some(("audit.tampered", 3)),
        false,
    );
    add(
        "A record deleted and the rest re-chained: shorter than the checkpoint",
        &["Deleted", "Rewritten"],
        reseal(&deleted, 3),
        cp.clone(),
        Some(("audit.truncated", 5)),
        false,
    );
    let mut inserted = base.clone();
    inserted.insert(2, base[1].clone());
    add(
        "A record duplicated (inserted)",
        &["Inserted"],
        inserted,
        cp.clone(),
        Some(("audit.tampered", 2)),
        false,
    );
    let mut forged = base.clone();
    forged.insert(4, edit_event(&base[3], |e| e["event_id"] = json!("forged")));
    add(
        "A forged record inserted",
        &["Inserted"],
        forged,
        None,
        Some(("audit.tampered", 4)),
        false,
    );
    let mut swapped = base.clone();
    swapped.swap(1, 2);
    add(
        "Two records swapped",
        &["Swapped"],
        swapped,
        None,
        Some(("audit.tampered", 1)),
        false,
    );

    add(
        "The last two records cut off, checked against the checkpoint",
        &["Truncated"],
        base[..4].to_vec(),
        cp.clone(),
        Some(("audit.truncated", 4)),
        false,
    );
    add(
        "The last two records cut off, no checkpoint: undetectable without one",
        &["Truncated", "NeedsCheckpoint"],
        base[..4].to_vec(),
        None,
        None,
        false,
    );
    add(
        "Every record removed, checked against the checkpoint",
        &["Truncated"],
        Vec::new(),
        cp.clone(),
        Some(("audit.truncated", 0)),
        false,
    );
    let mut torn = base.clone();
    let half = torn[5].len() / 2;
    torn[5].truncate(half);
    add(
        "The last record torn in half",
        &["Torn"],
        torn,
        None,
        Some(("audit.truncated", 5)),
        true,
    );
    let mut spaced = base.clone();
    spaced[1] = spaced[1].replacen("\"seq\":1", "\"seq\": 1", 1);
    add(
        "Whitespace added inside a record (not canonical)",
        &["NotCanonical"],
        spaced,
        None,
        Some(("audit.tampered", 1)),
        false,
    );
    let mut reordered = base.clone();
    let v: Value = serde_json::from_str(&reordered[0]).unwrap();
    reordered[0] = format!(
        r#"{{"seq":0,"prev":{},"hash":{},"event":{}}}"#,
        v["prev"],
        v["hash"],
        serde_json_canonicalizer::to_string(&v["event"]).unwrap()
    );
    add(
        "Members reordered (not canonical)",
        &["NotCanonical"],
        reordered,
        None,
        Some(("audit.tampered", 0)),
        false,
    );
    let mut blank = base.clone();
    blank.insert(3, String::new());
    add(
        "An empty line inserted",
        &["Inserted"],
        blank,
        None,
        Some(("audit.tampered", 3)),
        false,
    );

    add(
        "Checkpoint signed by another key",
        &["BadCheckpoint"],
        base.clone(),
        Some(other.sign(&Checkpoint {
            origin: ORIGIN.into(),
            size: 6,
            root: [0u8; 32],
        })),
        Some(("audit.bad_checkpoint", 0)),
        false,
    );
    add(
        "Checkpoint size edited after signing",
        &["BadCheckpoint"],
        base.clone(),
        Some(checkpoint.replacen("\n6\n", "\n5\n", 1)),
        Some(("audit.bad_checkpoint", 0)),
        false,
    );
    add(
        "Checkpoint without signature lines",
        &["BadCheckpoint"],
        base.clone(),
        Some(checkpoint.split_once("\n\n").unwrap().0.to_owned() + "\n"),
        Some(("audit.bad_checkpoint", 0)),
        false,
    );

    let doc = json!({
        "algorithm": "agentiam activity log verification",
        "generator": "cargo run -p agentiam-telemetry --example gen_audit_vectors > testvectors/audit_log.json",
        "numberOfTests": tests.len(),
        "verifier_key": signer.verifier_key(),
        "notes": {
            "Valid": "An intact log; a checkpoint of an earlier size also verifies a log that grew since.",
            "ChangedField": "A field of an event was edited in place.",
            "Rehashed": "The edited record's own hash was recomputed; the next record's prev no longer matches.",
            "Rewritten": "The attacker re-chained every later record. Only the signed checkpoint's root reveals it (reported at seq 0: the record cannot be pinpointed).",
            "NeedsCheckpoint": "Undetectable from the log alone, which is why checkpoints are signed and kept apart from the log.",
            "Deleted": "A record was removed.",
            "Inserted": "A record or line was added.",
            "Swapped": "Two records exchanged places.",
            "Truncated": "Records at the end are missing; a checkpoint covering them reveals it.",
            "Torn": "The last record is incomplete (a crash mid-write, or an edit).",
            "NotCanonical": "Records must be byte-for-byte RFC 8785 canonical JSON.",
            "BadCheckpoint": "The checkpoint is not validly signed by the expected key."
        },
        "tests": tests,
    });
    doc
}
