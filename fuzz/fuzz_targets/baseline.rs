//! Any bytes as a baselines file, and as a stream of calls scored and learned by `Baselines`:
//! parsing never panics, a parsed file saves and parses again to the same profiles, and
//! scoring any arguments (huge, negative, nested numbers) never panics and stays in 0..=100.
#![no_main]

use std::sync::Arc;

use agentiam_guard::{
    BaselineSettings, Baselines, BehaviourCheck, Decision, GuardRequest, Principal, Risk, RoleMap,
    ToolSpec, parse_profiles,
};
use agentiam_token::{Clock, FixedClock, ScopeSet};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(profiles) = parse_profiles(data) {
        let baselines = Baselines::new(RoleMap::new(), BaselineSettings::default());
        let dir = std::env::temp_dir().join(format!("agentiam-fuzz-baseline-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("b.json");
        let _ = std::fs::write(&file, data);
        if baselines.load(&file).is_ok() {
            baselines.save(&file).expect("save");
            let again = parse_profiles(&std::fs::read(&file).expect("read")).expect("reparse");
            assert_eq!(again.len(), profiles.len());
        }
    }
    // The same bytes as calls: each line is the arguments of one call, a second apart.
    let clock = Arc::new(FixedClock::new(1_767_571_200));
    let baselines = Baselines::new(
        RoleMap::new().role("r", "spiffe://t/agent"),
        BaselineSettings { min_observations: 3, ..BaselineSettings::default() },
    )
    .with_clock(clock.clone());
    let tools = [
        ToolSpec::new("a", Risk::Low).with_scope("x.y", "read"),
        ToolSpec::new("b", Risk::High).with_scope("z", "write"),
    ];
    let p = Principal::from_workload("spiffe://t/agent/1", ScopeSet::default(), i64::MAX);
    let Ok(text) = std::str::from_utf8(data) else { return };
    for (i, line) in text.lines().take(200).enumerate() {
        let Ok(args) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let tool = &tools[i % 2];
        clock.set(clock.now() + 1 + (line.len() as i64 % 5000));
        let request = GuardRequest::new(&p, tool.name(), &args);
        let a = baselines.assess(&request, tool);
        assert!(a.anomaly_score <= 100);
        let allow = Decision::Allow(agentiam_guard::Allowance::default());
        baselines.observe(&request, Some(tool), &allow);
    }
});
