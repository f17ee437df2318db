//! Learned behaviour baselines per agent role: the guard's answer to "this agent has valid
//! credentials, but is this what agents in its role do?".
//!
//! [`Baselines`] is a [`BehaviourCheck`]. For every role (agents are mapped to roles by their
//! SPIFFE ID, [`RoleMap`]) it learns, from the calls the guard allows:
//!
//! - the tools called and the resource categories touched (the first segment of a tool's scope
//!   resource: `hr` for `hr.records:read`);
//! - call rates as exponentially weighted counts over three windows (a minute, ten minutes,
//!   an hour), per agent, and their distribution across the role;
//! - bytes of tool output read per hour (from call outcomes), per agent;
//! - short sequences of tool calls (bigrams and trigrams within a session);
//! - the distribution of every numeric top-level argument of every tool (a payment agent's amounts);
//! - the hours of the week the role works in (UTC).
//!
//! Each decision is scored in constant time, whatever the history's length: a handful of hash
//! lookups and fixed-size log-scale histograms whose quantiles are cached.
//! What is unusual comes with an explanation
//! (`first call to hr.records:read for role support`, `amount 2,000,000 vs p99 12,800`).
//! The score reaches policy as `context.anomaly_score`: the default policy asks a human from 60
//! (`guard.anomaly`), [`Baselines`] itself refuses from [`BaselineSettings::deny_at`]
//! (`guard.anomaly`), and from [`BaselineSettings::revoke_at`] the guard also revokes the
//! credential and every credential delegated from it ([`crate::GuardBuilder::revocation`]).
//!
//! A delegated agent is also profiled as `role<parent-role` (a `research` sub-agent working
//! for a `support` agent is `research<support`), so a sub-agent doing what it never does for
//! that parent stands out even when its role does it for others.
//!
//! Only calls that were unremarkable, or that a human approved, are learned; an agent that
//! scored at or above the confirmation threshold is under suspicion for an hour, and nothing
//! it does is learned meanwhile. A role can be frozen (no learning), reset and inspected, and
//! the whole state saved to and loaded from a file ([`Baselines::save`], [`Baselines::load`]).
//!
//! ```
//! use agentiam_guard::{BaselineSettings, Baselines, RoleMap};
//! use agentiam_guard::behaviour::DeclaredProfile;
//! let roles = RoleMap::new()
//!     .role("support", "spiffe://example.org/agent/support")
//!     .role("finance", "spiffe://example.org/agent/finance");
//! let baselines = Baselines::new(roles, BaselineSettings::default());
//! // Learned from the guard's decisions (GuardBuilder::behaviour), or declared:
//! baselines.declare("support", DeclaredProfile {
//!     tools: vec!["tickets.read".into(), "kb.search".into()],
//!     ..Default::default()
//! });
//! assert!(baselines.profile("support").unwrap().is_established(500));
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use agentiam_token::{Clock, SystemClock};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::codes;
use crate::decision::{Decision, Denial};
use crate::hooks::{Assessment, BehaviourCheck, CallOutcome, Reserved};
use crate::request::{GuardRequest, ToolSpec};

use super::histogram::LogHistogram;

/// Windows of the per-agent call-rate counters, in seconds.
pub const RATE_WINDOWS: [i64; 3] = [60, 600, 3600];
/// The windows of [`RATE_WINDOWS`] as people read them.
pub const RATE_WINDOW_NAMES: [&str; 3] = ["minute", "10 minutes", "hour"];
/// Window of the per-agent bytes-read counter, in seconds.
const BYTES_WINDOW: i64 = 3600;
/// A gap longer than this starts a new sequence of calls (n-grams).
const SESSION_GAP_SECS: i64 = 1800;
/// How long an agent that scored at or above the confirmation threshold is not learned from.
const SUSPICION_SECS: i64 = 3600;
/// Most agents whose counters are kept; idle ones are dropped first.
const MAX_AGENTS: usize = 100_000;
/// Most profiles kept (roles, role pairs, or agents with `per_agent`).
const MAX_PROFILES: usize = 10_000;
/// Most distinct n-grams one profile remembers.
const MAX_NGRAMS: usize = 65_536;
/// Most tools, categories or tools with numeric arguments one profile remembers.
const MAX_KEYS: usize = 4096;
/// Most numeric arguments one profile remembers per tool.
const MAX_ARGUMENTS_PER_TOOL: usize = 64;
/// Largest baselines file read.
pub const MAX_BASELINE_FILE_BYTES: u64 = 256 << 20;
/// The file format's name.
pub const BASELINE_FORMAT: &str = "agentiam.baselines.v1";

/// Scores of the findings (0..=100).
const SCORE_NEW_CATEGORY: u8 = 95;
const SCORE_NEW_TOOL: u8 = 85;
/// A tool or category the role uses, but never for this parent's role.
const SCORE_NEW_FOR_PARENT: u8 = 70;
const SCORE_DECLARED_BOUND: u8 = 80;
const SCORE_NEW_BIGRAM: u8 = 40;
const SCORE_NEW_TRIGRAM: u8 = 30;
/// What a full baseline cannot learn (a new role past the profile cap, a numeric argument past
/// the per-tool or per-profile cap) would never be compared with anything: such calls score at
/// the default policy's confirmation threshold instead, so the caps do not fail open.
const SCORE_UNLEARNABLE: u8 = 60;

/// Maps agents to roles by SPIFFE ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    rules: Vec<(String, String)>,
}

impl RoleMap {
    /// No rules: every agent is its own role.
    pub fn new() -> Self {
        Self::default()
    }

    /// Agents whose SPIFFE ID is `prefix` or starts with `prefix` followed by `/` have `role`.
    /// The longest matching prefix wins.
    pub fn role(mut self, role: impl Into<String>, prefix: impl Into<String>) -> Self {
        let prefix = prefix.into().trim_end_matches('/').to_owned();
        self.rules.push((prefix, role.into()));
        self.rules.sort_by_key(|r| std::cmp::Reverse(r.0.len()));
        self
    }

    /// The role of this agent, if a rule maps it.
    pub fn resolve(&self, spiffe_id: &str) -> Option<&str> {
        self.rules.iter().find_map(|(prefix, role)| {
            let rest = spiffe_id.strip_prefix(prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some(role.as_str())
        })
    }
}

/// How [`Baselines`] turns scores into actions, and when a profile is trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineSettings {
    /// Calls a profile must have learned before its learned features score (default 500).
    /// A declared profile scores its declared bounds from the start.
    pub min_observations: u64,
    /// The score from which a call is under suspicion: not learned, and its agent not learned
    /// from for an hour (default 60, the default policy's confirmation threshold).
    pub suspicion_at: u8,
    /// The score from which [`Baselines`] refuses the call itself (`guard.anomaly`); default 90.
    pub deny_at: u8,
    /// The score from which the credential and its descendants are revoked (default: never).
    pub revoke_at: Option<u8>,
    /// One profile per agent (SPIFFE ID) instead of per role.
    pub per_agent: bool,
}

impl Default for BaselineSettings {
    fn default() -> Self {
        Self {
            min_observations: 500,
            suspicion_at: 60,
            deny_at: 90,
            revoke_at: None,
            per_agent: false,
        }
    }
}

/// A role's behaviour declared in configuration rather than learned: what it may touch,
/// and how far its numbers go. A declared profile is trusted from the first call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredProfile {
    /// Tool names the role calls.
    #[serde(default)]
    pub tools: Vec<String>,
    /// Resource categories (first scope segment) it touches, besides its tools' own.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Most calls per agent in an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hourly_calls: Option<f64>,
    /// Largest value of a numeric argument, as `"tool.argument": max`.
    #[serde(default)]
    pub arguments: BTreeMap<String, f64>,
}

/// What a role (or role pair, or agent) has been seen to do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleProfile {
    /// Calls learned.
    pub observations: u64,
    /// When the first learned call happened (seconds since the epoch).
    pub first_seen: i64,
    /// When the last learned call happened.
    pub last_seen: i64,
    /// No learning while frozen.
    #[serde(default)]
    pub frozen: bool,
    /// Calls per tool.
    pub tools: BTreeMap<String, u64>,
    /// Calls per resource category.
    pub categories: BTreeMap<String, u64>,
    /// Calls per hour of the week (UTC; 0 is Monday 00:00).
    pub hours: Vec<u64>,
    /// Tool-call bigrams and trigrams seen (stable hashes).
    pub ngrams: BTreeSet<u64>,
    /// Each agent's call count over the last minute, 10 minutes and hour, at each call.
    pub rates: [LogHistogram; 3],
    /// Each agent's bytes read over the last hour, at each call.
    pub bytes_read: LogHistogram,
    /// Numeric top-level arguments, by tool then argument name.
    pub arguments: BTreeMap<String, BTreeMap<String, LogHistogram>>,
    /// Declared behaviour, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared: Option<DeclaredProfile>,
}

impl RoleProfile {
    /// Whether learned features score: enough calls were learned, or the profile is declared.
    pub fn is_established(&self, min_observations: u64) -> bool {
        self.observations >= min_observations || self.declared.is_some()
    }

    fn learned(&self, min_observations: u64) -> bool {
        self.observations >= min_observations
    }

    fn knows_tool(&self, tool: &str) -> bool {
        self.tools.contains_key(tool)
            || self
                .declared
                .as_ref()
                .is_some_and(|d| d.tools.iter().any(|t| t == tool))
    }

    fn knows_category(&self, category: &str) -> bool {
        self.categories.contains_key(category)
            || self
                .declared
                .as_ref()
                .is_some_and(|d| d.categories.iter().any(|c| c == category))
    }

    fn validate(&self) -> Result<(), String> {
        if self.hours.len() != 168 && !self.hours.is_empty() {
            return Err("hours must have 168 entries".into());
        }
        if self.tools.len() > MAX_KEYS
            || self.categories.len() > MAX_KEYS
            || self.arguments.len() > MAX_KEYS
            || self.ngrams.len() > MAX_NGRAMS
        {
            return Err("profile exceeds the baseline's size limits".into());
        }
        Ok(())
    }
}

/// A role's findings for one call, strongest first.
#[derive(Debug, Clone, Default, PartialEq)]
struct Findings {
    items: Vec<(u8, String)>,
    /// The agent table is full of live agents: this agent's counters cannot be kept, so the
    /// call is refused (`guard.capacity_exceeded`) instead of being scored without them.
    full: bool,
}

impl Findings {
    fn add(&mut self, score: u8, explain: impl FnOnce() -> String) {
        self.items.push((score.min(100), explain()));
    }
    fn score(&self) -> u8 {
        self.items.iter().map(|(s, _)| *s).max().unwrap_or(0)
    }
    fn into_sorted(mut self) -> Vec<String> {
        self.items.sort_by_key(|i| std::cmp::Reverse(i.0));
        self.items.truncate(5);
        self.items.into_iter().map(|(_, e)| e).collect()
    }
}

/// Per-agent counters.
#[derive(Debug, Clone, Default)]
struct AgentState {
    last_call: i64,
    rates: [f64; 3],
    bytes_at: i64,
    bytes: f64,
    prev: [u64; 2],
    suspicious_until: i64,
    pending: Option<Sample>,
}

/// What `assess` saw, for `observe` to learn if the call is allowed.
#[derive(Debug, Clone)]
struct Sample {
    tool: u64,
    score: u8,
    rates: [f64; 3],
    bytes: f64,
    bigram: u64,
    trigram: u64,
    slot: usize,
    at: i64,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct State {
    profiles: FastMap<String, RoleProfile>,
    agents: FastMap<String, AgentState>,
}

/// Learned (and declared) baselines per role, as the guard's behaviour check.
#[derive(Debug, Clone)]
pub struct Baselines {
    roles: Arc<RoleMap>,
    settings: Arc<BaselineSettings>,
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
}

/// Stable 64-bit FNV-1a, so n-gram hashes mean the same after a save and a load.
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

fn mix(a: u64, b: u64) -> u64 {
    (a ^ b.rotate_left(17)).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (a >> 29)
}

/// The hour of the week (UTC), 0 being Monday 00:00.
pub fn hour_of_week(unix_secs: i64) -> usize {
    let days = unix_secs.div_euclid(86_400);
    let hour = unix_secs.rem_euclid(86_400) / 3600;
    // 1970-01-01 was a Thursday (3 days after a Monday).
    (((days + 3).rem_euclid(7)) * 24 + hour) as usize
}

fn slot_name(slot: usize) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let day = DAYS.get((slot / 24) % 7).copied().unwrap_or("?");
    format!("{day} {:02}:00 UTC", slot % 24)
}

/// A number for people: thousands separators, at most three significant decimals.
pub fn human_number(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    let rounded = if v.abs() >= 100.0 {
        v.round()
    } else if v.abs() >= 1.0 {
        (v * 10.0).round() / 10.0
    } else {
        (v * 1000.0).round() / 1000.0
    };
    if rounded.fract() != 0.0 || rounded.abs() >= 1e15 {
        return format!("{rounded}");
    }
    let digits = format!("{}", rounded.abs() as u64);
    let mut out = String::new();
    if rounded < 0.0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The resource category of a tool: the first segment of its scope resource.
pub fn resource_category(tool: &ToolSpec) -> &str {
    tool.resource().split('.').next().unwrap_or_default()
}

fn decay(value: f64, elapsed: i64, window: i64) -> f64 {
    if elapsed <= 0 {
        return value;
    }
    value * (-(elapsed as f64) / window as f64).exp()
}

/// `60` at `ratio == 2`, +15 per doubling beyond, capped at 99.
fn ratio_score(ratio: f64) -> u8 {
    (60.0 + 15.0 * (ratio / 2.0).log2()).clamp(60.0, 99.0) as u8
}

impl Baselines {
    /// Baselines for these roles, on the system clock.
    pub fn new(roles: RoleMap, settings: BaselineSettings) -> Self {
        Self {
            roles: Arc::new(roles),
            settings: Arc::new(settings),
            state: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The clock (tests and the trace evaluation pin it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &BaselineSettings {
        &self.settings
    }

    fn lock(&self) -> Option<std::sync::MutexGuard<'_, State>> {
        self.state.lock().ok()
    }

    /// The profile key of an agent: its role (or itself when unmapped or `per_agent`).
    pub fn role_of<'a>(&'a self, spiffe_id: &'a str) -> &'a str {
        if self.settings.per_agent {
            return spiffe_id;
        }
        self.roles.resolve(spiffe_id).unwrap_or(spiffe_id)
    }

    /// The profile keys a call is learned into: the presenter's role and, for a delegated
    /// agent, `role<parent-role`.
    fn keys<'a>(&'a self, request: &GuardRequest<'a>) -> (&'a str, Option<String>) {
        let p = request.principal;
        let role = self.role_of(p.presenter());
        let chain = p.chain();
        let pair = (p.delegation_depth() > 0 && chain.len() >= 2)
            .then(|| chain.get(chain.len() - 2))
            .flatten()
            .map(|parent| format!("{role}<{}", self.role_of(parent)));
        (role, pair)
    }

    /// Declares a role's behaviour (merged with what it has learned).
    pub fn declare(&self, role: &str, declared: DeclaredProfile) {
        if let Some(mut state) = self.lock() {
            let profile = state.profiles.entry(role.to_owned()).or_default();
            profile.declared = Some(declared);
        }
    }

    /// A copy of a profile (a role, `role<parent-role`, or an agent with `per_agent`).
    pub fn profile(&self, key: &str) -> Option<RoleProfile> {
        self.lock()?.profiles.get(key).cloned()
    }

    /// The keys of every profile, sorted.
    pub fn profile_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .lock()
            .map(|s| s.profiles.keys().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        keys
    }

    /// Stops (or resumes) learning for a profile; returns whether it exists.
    pub fn freeze(&self, key: &str, frozen: bool) -> bool {
        self.lock()
            .and_then(|mut s| s.profiles.get_mut(key).map(|p| p.frozen = frozen))
            .is_some()
    }

    /// Forgets what a profile learned (its declaration stays); returns whether it existed.
    pub fn reset(&self, key: &str) -> bool {
        self.lock()
            .and_then(|mut s| {
                s.profiles.get_mut(key).map(|p| {
                    *p = RoleProfile {
                        declared: p.declared.take(),
                        frozen: p.frozen,
                        ..RoleProfile::default()
                    };
                })
            })
            .is_some()
    }

    /// Writes every profile to `path` (atomically: a temporary file renamed over it).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let doc = {
            let state = self.lock().ok_or("baseline state unavailable")?;
            let profiles: BTreeMap<&String, &RoleProfile> = state.profiles.iter().collect();
            serde_json::to_vec(&serde_json::json!({
                "format": BASELINE_FORMAT,
                "profiles": profiles,
            }))
            .map_err(|e| e.to_string())?
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &doc).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Replaces every profile with those in `path` (written by [`Baselines::save`]).
    pub fn load(&self, path: &Path) -> Result<(), String> {
        let profiles = read_profiles(path)?;
        let mut state = self.lock().ok_or("baseline state unavailable")?;
        state.profiles = profiles.into_iter().collect();
        Ok(())
    }

    fn score(
        &self,
        keys: &(&str, Option<String>),
        profiles: &FastMap<String, RoleProfile>,
        tool: &ToolSpec,
        arguments: &Value,
        sample: &Sample,
    ) -> Findings {
        let min = self.settings.min_observations;
        let novelty_min = (min / 10).max(50);
        let mut findings = Findings::default();
        let role = keys.0;
        let own = profiles.get(role);
        // What a delegated agent touches is compared with what it does for this parent's role
        // when that is known well enough, otherwise with its role as a whole. A pair needs
        // fewer calls: what is new only for the pair is asked about, not refused, and a human's
        // approval teaches it.
        let pair = keys
            .1
            .as_deref()
            .and_then(|k| profiles.get(k).map(|p| (k, p)))
            .filter(|(_, p)| p.is_established(novelty_min));
        let novelty = pair.or(own.filter(|p| p.is_established(min)).map(|p| (role, p)));
        let who = |key: &str| match key.split_once('<') {
            Some((r, parent)) => format!("role {r} working for {parent}"),
            None => format!("role {key}"),
        };
        let scope = || format!("{}:{}", tool.resource(), tool.action());
        if let Some((key, profile)) = novelty {
            let category = resource_category(tool);
            // Known to the role, new only for this parent: ask, do not refuse.
            let known_to_role = own.is_some_and(|o| o.knows_tool(tool.name()));
            if profile.knows_tool(tool.name()) {
                // A tool the profile calls is in a category it touches.
            } else if !profile.knows_category(category) {
                let score = if known_to_role {
                    SCORE_NEW_FOR_PARENT
                } else {
                    SCORE_NEW_CATEGORY
                };
                findings.add(score, || {
                    format!(
                        "first access to resource category {category} ({}) for {}",
                        scope(),
                        who(key)
                    )
                });
            } else if !profile.knows_tool(tool.name()) {
                let score = if known_to_role {
                    SCORE_NEW_FOR_PARENT
                } else {
                    SCORE_NEW_TOOL
                };
                findings.add(score, || {
                    format!(
                        "first call to {} (tool {}) for {}",
                        scope(),
                        tool.name(),
                        who(key)
                    )
                });
            }
            if let Some(declared) = &profile.declared {
                Self::declared_bounds(declared, tool, arguments, sample, &mut findings, || {
                    who(key)
                });
            }
        }
        if own.is_none() && profiles.len() >= MAX_PROFILES {
            findings.add(SCORE_UNLEARNABLE, || {
                format!(
                    "no baseline can be learned for {}: the {MAX_PROFILES} profiles kept are taken",
                    who(role)
                )
            });
        }
        let Some(profile) = own.filter(|p| p.learned(min)) else {
            return findings;
        };
        // Numeric arguments the profile can no longer learn are never compared: say so.
        if let Value::Object(map) = arguments {
            let known = profile.arguments.get(tool.name());
            for (name, value) in map {
                let full = match known {
                    Some(k) => k.len() >= MAX_ARGUMENTS_PER_TOOL && !k.contains_key(name),
                    None => profile.arguments.len() >= MAX_KEYS,
                };
                if full && value.as_f64().is_some() {
                    findings.add(SCORE_UNLEARNABLE, || {
                        format!(
                            "numeric argument {name} of {} cannot be learned: the {}'s baseline is full",
                            tool.name(),
                            who(role)
                        )
                    });
                }
            }
        }
        let who = || who(role);
        // Rates: this agent's recent calls against what agents in the role do.
        for ((hist, &v), window) in profile
            .rates
            .iter()
            .zip(&sample.rates)
            .zip(RATE_WINDOW_NAMES)
        {
            if hist.count() >= 100 && v > (2.0 * hist.p99()).max(5.0) {
                findings.add(ratio_score(v / hist.p99().max(2.5)), || {
                    format!(
                        "{} calls in the last {}, {}x the {}'s median ({}; p99 {})",
                        human_number(v),
                        window,
                        human_number(v / hist.p50().max(1.0)),
                        who(),
                        human_number(hist.p50()),
                        human_number(hist.p99())
                    )
                });
            }
        }
        let bytes = &profile.bytes_read;
        if bytes.count() >= 100 && sample.bytes > (2.0 * bytes.p99()).max(65_536.0) {
            findings.add(
                ratio_score(sample.bytes / bytes.p99().max(32_768.0)),
                || {
                    format!(
                        "read {} bytes in the last hour, {}x the {}'s hourly median ({}; p99 {})",
                        human_number(sample.bytes),
                        human_number(sample.bytes / bytes.p50().max(1.0)),
                        who(),
                        human_number(bytes.p50()),
                        human_number(bytes.p99())
                    )
                },
            );
        }
        // Numeric arguments far outside what the role uses.
        if let (Value::Object(map), Some(known)) = (arguments, profile.arguments.get(tool.name())) {
            for (name, value) in map {
                let Some(v) = value.as_f64() else { continue };
                let Some(hist) = known.get(name) else {
                    continue;
                };
                if hist.count() >= 50
                    && !hist.is_growing()
                    && v.abs() > 4.0 * hist.p99()
                    && v.abs() > hist.max()
                {
                    findings.add(ratio_score(v.abs() / (2.0 * hist.p99())), || {
                        format!(
                            "{name} {} vs p99 {} for {} ({} calls of {})",
                            human_number(v),
                            human_number(hist.p99()),
                            who(),
                            human_number(hist.count() as f64),
                            tool.name()
                        )
                    });
                }
            }
        }
        // The week's rhythm: far more calls in the last hour than the role makes at this hour
        // of the week (or the hour before, which the hour-long counter still remembers).
        if let (Some(&now), Some(&before)) = (
            profile.hours.get(sample.slot),
            profile.hours.get((sample.slot + 167) % 168),
        ) {
            let weeks = ((profile.last_seen - profile.first_seen) as f64 / 604_800.0).max(1.0);
            let usual = now.max(before) as f64 / weeks;
            let hour = sample.rates[2];
            let floor = (4.0 * usual).max(10.0);
            if hour > floor {
                findings.add(ratio_score(2.0 * hour / floor), || {
                    format!(
                        "{} calls in the last hour; the {} makes {} a week at {}",
                        human_number(hour),
                        who(),
                        human_number(usual),
                        slot_name(sample.slot)
                    )
                });
            }
        }
        if sample.bigram != 0 && !profile.ngrams.contains(&sample.bigram) {
            findings.add(SCORE_NEW_BIGRAM, || {
                format!(
                    "a sequence of tools ending in {} new for {}",
                    tool.name(),
                    who()
                )
            });
        } else if sample.trigram != 0 && !profile.ngrams.contains(&sample.trigram) {
            findings.add(SCORE_NEW_TRIGRAM, || {
                format!(
                    "a sequence of three tools ending in {} new for {}",
                    tool.name(),
                    who()
                )
            });
        }
        findings
    }

    fn declared_bounds(
        declared: &DeclaredProfile,
        tool: &ToolSpec,
        arguments: &Value,
        sample: &Sample,
        findings: &mut Findings,
        who: impl Fn() -> String,
    ) {
        if let Some(max) = declared.hourly_calls
            && sample.rates[2] > max
        {
            findings.add(SCORE_DECLARED_BOUND, || {
                format!(
                    "{} calls in the last hour, above the {} declared for {}",
                    human_number(sample.rates[2]),
                    human_number(max),
                    who()
                )
            });
        }
        if declared.arguments.is_empty() {
            return;
        }
        if let Value::Object(map) = arguments {
            for (name, value) in map {
                let Some(v) = value.as_f64() else { continue };
                let Some(max) = declared.arguments.get(&format!("{}.{name}", tool.name())) else {
                    continue;
                };
                if v.abs() > *max {
                    findings.add(SCORE_DECLARED_BOUND, || {
                        format!(
                            "{name} {} above the {} declared for {}",
                            human_number(v),
                            human_number(*max),
                            who()
                        )
                    });
                }
            }
        }
    }

    /// Learns one call into a profile.
    fn learn(profile: &mut RoleProfile, tool: &ToolSpec, arguments: &Value, sample: &Sample) {
        if profile.frozen {
            return;
        }
        if profile.observations == 0 {
            profile.first_seen = sample.at;
        }
        profile.observations += 1;
        profile.last_seen = profile.last_seen.max(sample.at);
        bump(&mut profile.tools, tool.name());
        bump(&mut profile.categories, resource_category(tool));
        if profile.hours.len() != 168 {
            profile.hours = vec![0; 168];
        }
        if let Some(h) = profile.hours.get_mut(sample.slot) {
            *h += 1;
        }
        for gram in [sample.bigram, sample.trigram] {
            if gram != 0 && profile.ngrams.len() < MAX_NGRAMS {
                profile.ngrams.insert(gram);
            }
        }
        for (hist, v) in profile.rates.iter_mut().zip(sample.rates) {
            hist.record(v);
        }
        profile.bytes_read.record(sample.bytes);
        if let Value::Object(map) = arguments {
            let known = profile.arguments.len();
            let per_tool = match profile.arguments.get_mut(tool.name()) {
                Some(t) => Some(t),
                None if known < MAX_KEYS => {
                    Some(profile.arguments.entry(tool.name().to_owned()).or_default())
                }
                None => None,
            };
            if let Some(per_tool) = per_tool {
                for (name, value) in map {
                    let Some(v) = value.as_f64() else { continue };
                    if per_tool.len() >= MAX_ARGUMENTS_PER_TOOL && !per_tool.contains_key(name) {
                        continue;
                    }
                    per_tool.entry(name.clone()).or_default().record(v);
                }
            }
        }
    }

    /// Learns one call the guard allowed at `at` (seconds since the epoch), `approved` by a
    /// human or not: what `agentiam baseline learn` does with an activity log. The same rules
    /// as online apply (a call that would have scored as suspicious is not learned unless a
    /// human approved it), so replaying a log in time order gives the baseline the guard
    /// would have learned. Returns whether the call was learned.
    pub fn learn_call(
        &self,
        request: &GuardRequest<'_>,
        tool: &ToolSpec,
        at: i64,
        approved: bool,
    ) -> bool {
        let findings = self.sample(request, tool, at);
        let allow = Decision::Allow(crate::decision::Allowance {
            approval: approved.then(|| "replayed".to_owned()),
            ..crate::decision::Allowance::default()
        });
        let learned = !findings.full && (approved || findings.score() < self.settings.suspicion_at);
        self.commit(request, Some(tool), &allow, at);
        learned
    }

    /// Counts bytes an agent read at `at` (what the guard does with each call's outcome).
    pub fn learn_output(&self, agent: &str, bytes: usize, at: i64) {
        let Some(mut state) = self.lock() else { return };
        if let Some(a) = state.agents.get_mut(agent) {
            a.bytes = decay(a.bytes, at - a.bytes_at, BYTES_WINDOW) + bytes as f64;
            a.bytes_at = at;
        }
    }

    /// Updates the agent's counters for a call at `now` and scores it.
    fn sample(&self, request: &GuardRequest<'_>, tool: &ToolSpec, now: i64) -> Findings {
        let keys = self.keys(request);
        let Some(mut state) = self.lock() else {
            return Findings {
                items: vec![(100, "baseline state unavailable".to_owned())],
                full: false,
            };
        };
        let state = &mut *state;
        let agent_id = request.principal.presenter();
        if !state.agents.contains_key(agent_id) && state.agents.len() >= MAX_AGENTS {
            state
                .agents
                .retain(|_, a| now - a.last_call < SESSION_GAP_SECS);
            if state.agents.len() >= MAX_AGENTS {
                // Forgetting live agents would reset their rate counters (an agent in a burst
                // would look idle again); the newcomer is refused until some go idle.
                return Findings {
                    items: Vec::new(),
                    full: true,
                };
            }
        }
        let agent = match state.agents.get_mut(agent_id) {
            Some(a) => a,
            None => state.agents.entry(agent_id.to_owned()).or_default(),
        };
        let elapsed = now - agent.last_call;
        if elapsed > SESSION_GAP_SECS {
            agent.prev = [0, 0];
        }
        for (rate, window) in agent.rates.iter_mut().zip(RATE_WINDOWS) {
            *rate = decay(*rate, elapsed, window) + 1.0;
        }
        agent.bytes = decay(agent.bytes, now - agent.bytes_at, BYTES_WINDOW);
        agent.bytes_at = now;
        agent.last_call = now;
        let current = fnv(&[tool.name()]);
        let bigram = if agent.prev[1] == 0 {
            mix(fnv(&["^"]), current)
        } else {
            mix(agent.prev[1], current)
        };
        let trigram = if agent.prev[0] == 0 || agent.prev[1] == 0 {
            0
        } else {
            mix(mix(agent.prev[0], agent.prev[1]), current)
        };
        agent.prev = [agent.prev[1], current];
        let sample = Sample {
            tool: current,
            score: 0,
            rates: agent.rates,
            bytes: agent.bytes,
            bigram,
            trigram,
            slot: hour_of_week(now),
            at: now,
        };
        let findings = self.score(&keys, &state.profiles, tool, request.arguments(), &sample);
        if let Some(agent) = state.agents.get_mut(agent_id) {
            agent.pending = Some(Sample {
                score: findings.score(),
                ..sample
            });
        }
        findings
    }

    /// Learns the call `sample` saw if the decision allows learning from it.
    fn commit(
        &self,
        request: &GuardRequest<'_>,
        tool: Option<&ToolSpec>,
        decision: &Decision,
        now: i64,
    ) {
        let Some(tool) = tool else { return };
        let keys = self.keys(request);
        let Some(mut state) = self.lock() else { return };
        let state = &mut *state;
        let Some(agent) = state.agents.get_mut(request.principal.presenter()) else {
            return;
        };
        let Some(sample) = agent.pending.take_if(|s| s.tool == fnv(&[tool.name()])) else {
            return;
        };
        let approved = matches!(decision, Decision::Allow(a) if a.approval.is_some());
        if sample.score >= self.settings.suspicion_at && !approved {
            agent.suspicious_until = now + SUSPICION_SECS;
            return;
        }
        if !decision.is_allowed() || (agent.suspicious_until > now && !approved) {
            return;
        }
        for key in std::iter::once(keys.0).chain(keys.1.as_deref()) {
            if !state.profiles.contains_key(key) {
                if state.profiles.len() >= MAX_PROFILES {
                    continue;
                }
                state
                    .profiles
                    .insert(key.to_owned(), RoleProfile::default());
            }
            let Some(profile) = state.profiles.get_mut(key) else {
                continue;
            };
            Self::learn(profile, tool, request.arguments(), &sample);
        }
    }
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    if let Some(c) = map.get_mut(key) {
        *c += 1;
    } else if map.len() < MAX_KEYS {
        map.insert(key.to_owned(), 1);
    }
}

/// Reads a baselines file written by [`Baselines::save`], checking its size and shape.
pub fn read_profiles(path: &Path) -> Result<HashMap<String, RoleProfile>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if size > MAX_BASELINE_FILE_BYTES {
        return Err(format!(
            "{}: {size} bytes is more than a baselines file may have ({MAX_BASELINE_FILE_BYTES})",
            path.display()
        ));
    }
    let text = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_profiles(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the contents of a baselines file, checking its size and shape.
pub fn parse_profiles(text: &[u8]) -> Result<HashMap<String, RoleProfile>, String> {
    if text.len() as u64 > MAX_BASELINE_FILE_BYTES {
        return Err(format!(
            "{} bytes is more than a baselines file may have ({MAX_BASELINE_FILE_BYTES})",
            text.len()
        ));
    }
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        format: String,
        profiles: HashMap<String, RoleProfile>,
    }
    let doc: Doc = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    if doc.format != BASELINE_FORMAT {
        return Err(format!("format {:?} is not {BASELINE_FORMAT}", doc.format));
    }
    if doc.profiles.len() > MAX_PROFILES {
        return Err("too many profiles".to_owned());
    }
    for (key, profile) in &doc.profiles {
        profile
            .validate()
            .map_err(|e| format!("profile {key:?}: {e}"))?;
    }
    Ok(doc.profiles)
}

impl BehaviourCheck for Baselines {
    fn assess(&self, request: &GuardRequest<'_>, tool: &ToolSpec) -> Assessment {
        let findings = self.sample(request, tool, self.clock.now());
        if findings.full {
            return Assessment {
                refusal: Some(Denial::new(
                    codes::CAPACITY_EXCEEDED,
                    format!(
                        "the behaviour baseline tracks {MAX_AGENTS} agents active in the last {SESSION_GAP_SECS} s; \
                         this agent cannot be tracked until some go idle"
                    ),
                )),
                ..Assessment::default()
            };
        }
        let score = findings.score();
        if score == 0 {
            return Assessment::default();
        }
        let findings = findings.into_sorted();
        let revoke = self.settings.revoke_at.is_some_and(|at| score >= at);
        let refusal = (score >= self.settings.deny_at || revoke).then(|| {
            let mut message = String::from("behaviour far from the role's baseline: ");
            for (i, f) in findings.iter().enumerate() {
                if i > 0 {
                    message.push_str("; ");
                }
                let _ = write!(message, "{f}");
            }
            Denial::new(codes::ANOMALY, message)
        });
        Assessment {
            anomaly_score: score,
            refusal,
            findings,
            revoke,
            reserved: Reserved::default(),
        }
    }

    fn observe(&self, request: &GuardRequest<'_>, tool: Option<&ToolSpec>, decision: &Decision) {
        self.commit(request, tool, decision, self.clock.now());
    }

    fn observe_outcome(&self, outcome: &CallOutcome<'_>) {
        if !outcome.failed {
            self.learn_output(
                outcome.principal.presenter(),
                outcome.output.len(),
                self.clock.now(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    //! The baseline's caps at, below and past their bounds.
    use super::*;
    use agentiam_token::{FixedClock, ScopeSet};
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn baselines(clock: &Arc<FixedClock>) -> Baselines {
        Baselines::new(RoleMap::new(), BaselineSettings::default()).with_clock(clock.clone())
    }

    fn agent(id: &str) -> crate::Principal {
        crate::Principal::from_workload(
            &crate::VerifiedPeer::verified_elsewhere(
                &format!("spiffe://acme.test/{id}"),
                NOW + 86_400,
            )
            .unwrap(),
            ScopeSet::default(),
        )
    }

    fn assess(b: &Baselines, who: &crate::Principal, tool: &ToolSpec, args: &Value) -> Assessment {
        b.assess(&GuardRequest::new(who, tool.name(), args), tool)
    }

    /// Past the agent cap a newcomer is refused; live agents keep their counters (they used
    /// to be forgotten all at once), and idle ones make room.
    #[test]
    fn agents_at_below_and_past_the_cap() {
        let clock = Arc::new(FixedClock::new(NOW));
        let b = baselines(&clock);
        let tool = ToolSpec::new("read", crate::Risk::Low);
        let args = json!({});
        for i in 0..MAX_AGENTS - 1 {
            assert!(
                assess(&b, &agent(&format!("a{i}")), &tool, &args)
                    .refusal
                    .is_none()
            );
        }
        // At the cap: the last one fits.
        assert!(assess(&b, &agent("last"), &tool, &args).refusal.is_none());
        assert_eq!(b.lock().unwrap().agents.len(), MAX_AGENTS);
        // Past it: refused with its own code; an agent already tracked is not.
        let refusal = assess(&b, &agent("newcomer"), &tool, &args)
            .refusal
            .unwrap();
        assert_eq!(refusal.code(), codes::CAPACITY_EXCEEDED);
        assert!(assess(&b, &agent("a7"), &tool, &args).refusal.is_none());
        assert!(
            b.lock()
                .unwrap()
                .agents
                .contains_key("spiffe://acme.test/a7")
        );
        // Once the others have been idle for a session gap, there is room again.
        clock.set(NOW + SESSION_GAP_SECS + 1);
        assert!(
            assess(&b, &agent("newcomer"), &tool, &args)
                .refusal
                .is_none()
        );
    }

    fn established() -> RoleProfile {
        RoleProfile {
            observations: BaselineSettings::default().min_observations,
            first_seen: NOW - 86_400,
            last_seen: NOW - 60,
            tools: BTreeMap::from([("pay".to_owned(), 500)]),
            categories: BTreeMap::from([("pay".to_owned(), 500)]),
            ..RoleProfile::default()
        }
    }

    /// A numeric argument the profile can no longer learn is never compared with anything:
    /// past the per-tool cap it scores at the confirmation threshold.
    #[test]
    fn numeric_arguments_at_below_and_past_the_per_tool_cap() {
        let clock = Arc::new(FixedClock::new(NOW));
        let payer = agent("payer");
        let role = payer.presenter().to_owned();
        let tool = ToolSpec::new("pay", crate::Risk::Low);
        for (known, want) in [
            (MAX_ARGUMENTS_PER_TOOL - 2, 0),
            (MAX_ARGUMENTS_PER_TOOL - 1, 0),
            (MAX_ARGUMENTS_PER_TOOL, SCORE_UNLEARNABLE),
        ] {
            let b = baselines(&clock);
            let mut profile = established();
            let per_tool = (0..known)
                .map(|i| (format!("n{i}"), LogHistogram::default()))
                .collect();
            profile.arguments.insert("pay".to_owned(), per_tool);
            b.lock().unwrap().profiles.insert(role.clone(), profile);
            let a = assess(&b, &payer, &tool, &json!({"amount": 5, "memo": "x"}));
            assert_eq!(unlearnable(&a), want, "{known} arguments known: {a:?}");
            // One already learned is compared as usual, whatever the cap.
            let b2 = baselines(&clock);
            let mut profile = established();
            let mut per_tool: BTreeMap<String, LogHistogram> = (1..known)
                .map(|i| (format!("n{i}"), LogHistogram::default()))
                .collect();
            per_tool.insert("amount".to_owned(), LogHistogram::default());
            profile.arguments.insert("pay".to_owned(), per_tool);
            b2.lock().unwrap().profiles.insert(role.clone(), profile);
            assert_eq!(
                unlearnable(&assess(&b2, &payer, &tool, &json!({"amount": 5}))),
                0
            );
        }
        // No per-tool map and the profile's tool cap reached: the same.
        let b = baselines(&clock);
        let mut profile = established();
        profile.arguments = (0..MAX_KEYS)
            .map(|i| (format!("t{i}"), BTreeMap::new()))
            .collect();
        b.lock().unwrap().profiles.insert(role, profile);
        let a = assess(&b, &payer, &tool, &json!({"amount": 5}));
        assert_eq!(unlearnable(&a), SCORE_UNLEARNABLE);
        assert!(a.anomaly_score >= SCORE_UNLEARNABLE);
    }

    /// The score the "cannot be learned" finding contributes (0 when absent).
    fn unlearnable(a: &Assessment) -> u8 {
        if a.findings.iter().any(|f| f.contains("cannot be learned")) {
            SCORE_UNLEARNABLE
        } else {
            0
        }
    }

    /// A role that cannot get a profile would never be compared with anything: past the
    /// profile cap its calls score at the confirmation threshold.
    #[test]
    fn profiles_at_below_and_past_the_cap() {
        let clock = Arc::new(FixedClock::new(NOW));
        let tool = ToolSpec::new("read", crate::Risk::Low);
        for (kept, want) in [
            (MAX_PROFILES - 2, 0),
            (MAX_PROFILES - 1, 0),
            (MAX_PROFILES, SCORE_UNLEARNABLE),
        ] {
            let b = baselines(&clock);
            {
                let mut state = b.lock().unwrap();
                for i in 0..kept {
                    state
                        .profiles
                        .insert(format!("role-{i}"), RoleProfile::default());
                }
            }
            let a = assess(&b, &agent("new-role"), &tool, &json!({}));
            assert_eq!(a.anomaly_score, want, "{kept} profiles kept");
            // A role that has its profile is unaffected.
            assert_eq!(
                b.lock().unwrap().profiles.len(),
                kept,
                "scoring never adds profiles"
            );
        }
    }

    /// Past the tool cap a new tool is not learned, so it stays new (scored, not forgotten).
    #[test]
    fn tools_past_the_cap_stay_new() {
        let clock = Arc::new(FixedClock::new(NOW));
        let b = baselines(&clock);
        let payer = agent("payer");
        let mut profile = established();
        for i in 0..MAX_KEYS - 1 {
            profile.tools.insert(format!("tool{i}"), 1);
        }
        assert_eq!(profile.tools.len(), MAX_KEYS);
        b.lock()
            .unwrap()
            .profiles
            .insert(payer.presenter().to_owned(), profile);
        let new_tool = ToolSpec::new("new_pay", crate::Risk::Low).with_scope("pay", "new");
        let request = GuardRequest::new(&payer, "new_pay", &Value::Null);
        assert!(b.learn_call(&request, &new_tool, NOW, true));
        let profile = b.profile(payer.presenter()).unwrap();
        assert!(!profile.tools.contains_key("new_pay"));
        let a = assess(&b, &payer, &new_tool, &Value::Null);
        assert!(
            a.findings.iter().any(|f| f.starts_with("first call to")),
            "{a:?}"
        );
    }

    /// Files: profile, tool and n-gram counts at, below and past their caps; size past the cap.
    #[test]
    fn files_at_below_and_past_their_caps() {
        let doc = |profiles: &BTreeMap<String, RoleProfile>| {
            serde_json::to_vec(&json!({"format": BASELINE_FORMAT, "profiles": profiles})).unwrap()
        };
        let many = |n: usize| -> BTreeMap<String, RoleProfile> {
            (0..n)
                .map(|i| (format!("r{i}"), RoleProfile::default()))
                .collect()
        };
        assert!(parse_profiles(&doc(&many(MAX_PROFILES - 1))).is_ok());
        assert!(parse_profiles(&doc(&many(MAX_PROFILES))).is_ok());
        assert!(parse_profiles(&doc(&many(MAX_PROFILES + 1))).is_err());
        let with = |tools: usize, ngrams: usize| {
            let p = RoleProfile {
                tools: (0..tools).map(|i| (format!("t{i}"), 1)).collect(),
                ngrams: (0..ngrams as u64).collect(),
                ..RoleProfile::default()
            };
            parse_profiles(&doc(&BTreeMap::from([("r".to_owned(), p)])))
        };
        assert!(with(MAX_KEYS - 1, 0).is_ok() && with(MAX_KEYS, 0).is_ok());
        assert!(with(MAX_KEYS + 1, 0).is_err());
        assert!(with(0, MAX_NGRAMS).is_ok() && with(0, MAX_NGRAMS + 1).is_err());
        // Size: a sparse file one byte past the cap is refused before it is read.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.json");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_BASELINE_FILE_BYTES + 1).unwrap();
        let err = read_profiles(&path).unwrap_err();
        assert!(err.contains("more than a baselines file may have"), "{err}");
        let text = vec![b' '; 16];
        assert!(parse_profiles(&text).unwrap_err().contains("EOF"));
    }
}
