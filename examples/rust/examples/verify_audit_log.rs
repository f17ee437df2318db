//! An auditor's story: an agent's activity log is written, verified offline against its signed
//! checkpoint, and a copy with one record edited is refused with the record's number.
//!
//! `cargo run --example verify_audit_log`
use agentiam::telemetry::*;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let log_dir = dir.path().join("audit");
    let signer = NoteSigner::generate("acme.example/agentiam/audit")?;
    let verifier = NoteVerifier::from_verifier_key(&signer.verifier_key())?;

    // The agent's guard writes one record per decision (and per tool result).
    let log = AuditLog::open_dir(
        &log_dir,
        LogConfig::new("acme.example/agentiam/audit"),
        Some(signer),
    )?;
    let agent = AgentRef {
        spiffe_id: "spiffe://acme.example/agent/payer".into(),
        composite_digest: None,
    };
    for (i, (amount, decision)) in [
        (420, Decision::allow()),
        (9000, Decision::deny("guard.constraint_violated")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut event = AuditEvent::new(
            "tool_call",
            agent.clone(),
            1_800_000_000_000 + i as i64,
            decision,
        );
        event.tool = Some(RedactionPolicy::default().tool_call(
            "approve_payment",
            Some(&format!("call-{i}")),
            &json!({"amount": amount, "vendor": "ACME", "api_key": "sk-live"}),
        )?);
        log.append_durable(event)?;
    }
    let checkpoint = log
        .close()?
        .ok_or("the log has a signer, so closing signs a checkpoint")?;

    // Offline, with nothing but the directory, the checkpoint and the verifier key.
    let report = verify_log(&FileStore::open(&log_dir)?, Some((&checkpoint, &verifier)))?;
    println!(
        "intact: {} records in {} segment(s), consistent with the signed checkpoint",
        report.records, report.segments
    );

    // Someone lowers the refused amount in a copy of the log: the copy no longer verifies.
    let tampered_dir = dir.path().join("tampered");
    std::fs::create_dir_all(&tampered_dir)?;
    for entry in std::fs::read_dir(&log_dir)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        let name = path.file_name().ok_or("a segment has a name")?;
        std::fs::write(tampered_dir.join(name), text.replace("9000", "900"))?;
    }
    match verify_log(
        &FileStore::open(&tampered_dir)?,
        Some((&checkpoint, &verifier)),
    ) {
        Ok(_) => Err("a tampered log verified".into()),
        Err(refused) => {
            println!(
                "tampered copy refused: {} ({refused})",
                agentiam::codes::ReasonCode::code(&refused)
            );
            Ok(())
        }
    }
}
