//! Declarative limits: call rates and running totals per agent, principal or task, over sliding
//! windows, enforced before policy (`guard.rate_limited`).
//!
//! A call is counted when it is assessed, before it runs, so concurrent calls see each other:
//! ten simultaneous $9,000 transfers do not all slip under a $10,000 hourly total, because each
//! one's amount is reserved before the next is assessed. A reservation is released again when
//! the guard's decision for that call is not an allow (denied, or waiting for a human).
//!
//! ```
//! use agentiam_guard::{BehaviourCheck, Limit, Limits};
//! let limits = Limits::new(vec![
//!     Limit::calls("transfers-per-minute", "transfer", 60, 5),
//!     Limit::total("money-per-hour", "transfer", 3600, "amount", 10_000.0),
//! ]);
//! # let _ = limits;
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use agentiam_token::{Clock, SystemClock};
use serde_json::Value;

use crate::codes;
use crate::decision::Denial;
use crate::hooks::{Assessment, BehaviourCheck, Reserved};
use crate::request::{GuardRequest, ToolSpec};

/// Whose calls a limit counts together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitScope {
    /// The presenting agent (the newest actor).
    Agent,
    /// The principal on whose behalf the agent acts (`sub`), across all its agents and sub-agents.
    Principal,
    /// The task the credential was issued for (calls without a task share one bucket).
    Task,
}

/// One limit over a sliding window.
#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    id: String,
    tool: String,
    scope: LimitScope,
    window_secs: i64,
    max_calls: Option<u64>,
    max_total: Option<(String, f64)>,
}

impl Limit {
    fn new(
        id: String,
        tool: String,
        window_secs: i64,
        max_calls: Option<u64>,
        max_total: Option<(String, f64)>,
    ) -> Self {
        Self {
            id,
            tool,
            scope: LimitScope::Agent,
            window_secs: window_secs.max(1),
            max_calls,
            max_total,
        }
    }

    /// At most `max_calls` calls of `tool` (`*` for every tool) per `window_secs`, per agent.
    pub fn calls(
        id: impl Into<String>,
        tool: impl Into<String>,
        window_secs: i64,
        max_calls: u64,
    ) -> Self {
        Self::new(id.into(), tool.into(), window_secs, Some(max_calls), None)
    }

    /// The numeric `argument` of `tool` sums to at most `max_total` per `window_secs`, per agent.
    /// A call whose argument is missing or not a finite non-negative number is refused: a limit
    /// on an amount the guard cannot read fails closed.
    pub fn total(
        id: impl Into<String>,
        tool: impl Into<String>,
        window_secs: i64,
        argument: impl Into<String>,
        max_total: f64,
    ) -> Self {
        Self::new(
            id.into(),
            tool.into(),
            window_secs,
            None,
            Some((argument.into(), max_total)),
        )
    }

    /// Counts per principal or per task instead of per agent.
    pub fn per(mut self, scope: LimitScope) -> Self {
        self.scope = scope;
        self
    }

    /// The limit's id, reported in refusals.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn applies_to(&self, tool: &str) -> bool {
        self.tool == "*" || self.tool == tool
    }

    fn key(&self, request: &GuardRequest<'_>) -> String {
        match self.scope {
            LimitScope::Agent => request.principal.presenter().to_owned(),
            LimitScope::Principal => request.principal.subject().to_owned(),
            LimitScope::Task => request.principal.task().unwrap_or("").to_owned(),
        }
    }
}

/// Amounts are summed exactly, as integers of 10^-9 of the argument's unit: a float sum
/// rounds (10^16 + 1 + 1 + 1 stays 10^16), and a running total must never pass its maximum.
type Units = i128;
const UNITS_PER_ONE: Units = 1_000_000_000;
/// Largest amount accepted (10^27 units, 10^18 whole): 100,000 of them still fit an i128.
const MAX_AMOUNT_UNITS: Units = 1_000_000_000_000_000_000_000_000_000;

/// An argument amount in units, exactly: its JSON literal with at most 9 decimals.
fn amount_units(n: &serde_json::Number) -> Option<Units> {
    let exact = agentiam_token::ExactNumber::from_json(n).ok()?;
    let zero = agentiam_token::ExactNumber::parse("0").ok()?;
    if exact < zero {
        return None;
    }
    let units: Units = exact.to_fixed(9)?.replace('.', "").parse().ok()?;
    (units <= MAX_AMOUNT_UNITS).then_some(units)
}

/// A limit's maximum in units, read to 9 decimals; beyond any amount, unlimited.
fn max_units(max: f64) -> Units {
    if max.is_nan() || max < 0.0 {
        return 0;
    }
    if max >= 1e29 {
        return Units::MAX;
    }
    format!("{max:.9}").replace('.', "").parse().unwrap_or(0)
}

/// Units as a decimal for messages (`12.5`).
fn show(units: Units) -> String {
    let whole = units / UNITS_PER_ONE;
    let frac = (units % UNITS_PER_ONE).unsigned_abs();
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:09}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Calls counted in one window: (when, amount) in time order.
#[derive(Debug, Default)]
struct Window {
    entries: VecDeque<(i64, Units)>,
    total: Units,
}

impl Window {
    fn expire(&mut self, now: i64, window_secs: i64) {
        while let Some(&(at, amount)) = self.entries.front() {
            if at > now - window_secs {
                break;
            }
            self.entries.pop_front();
            self.total -= amount;
        }
        if self.entries.is_empty() {
            self.total = 0;
        }
    }
}

/// Most windows kept at once; past this, new keys are refused (fail closed) until old ones expire.
const MAX_WINDOWS: usize = 100_000;
/// Most calls one window remembers; a limit above this counts no further (and refuses).
const MAX_ENTRIES: usize = 100_000;

/// One call's entry in one window: (limit index, key, time, amount).
type Reservation = (usize, String, i64, Units);

type Windows = Arc<Mutex<HashMap<(usize, String), Window>>>;

/// Declarative limits as the guard's behaviour check (`GuardBuilder::behaviour`).
#[derive(Debug, Clone)]
pub struct Limits {
    limits: Arc<Vec<Limit>>,
    windows: Windows,
    clock: Arc<dyn Clock>,
}

impl Limits {
    /// Limits on the system clock.
    pub fn new(limits: Vec<Limit>) -> Self {
        Self {
            limits: Arc::new(limits),
            windows: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }

    /// The clock (tests pin it).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn amount(limit: &Limit, arguments: &Value) -> Result<Units, String> {
        match &limit.max_total {
            None => Ok(0),
            Some((argument, _)) => match arguments.get(argument).and_then(Value::as_number) {
                Some(n) => amount_units(n).ok_or_else(|| {
                    format!(
                        "{}: argument {argument:?} = {n} cannot be summed exactly (a non-negative number up to 10^18 with at most 9 decimals)",
                        limit.id
                    )
                }),
                None => Err(format!(
                    "{}: argument {argument:?} must be a non-negative number for a limited total",
                    limit.id
                )),
            },
        }
    }
}

/// Takes a refused or unconfirmed call's entries out of their windows again.
fn release(windows: &Windows, reservations: &[Reservation]) {
    let Ok(mut windows) = windows.lock() else {
        return;
    };
    for (i, key, at, amount) in reservations {
        if let Some(w) = windows.get_mut(&(*i, key.clone()))
            && let Some(pos) = w
                .entries
                .iter()
                .rposition(|&(t, a)| t == *at && a == *amount)
        {
            w.entries.remove(pos);
            w.total -= amount;
            if w.entries.is_empty() {
                w.total = 0;
            }
        }
    }
}

fn refuse(message: String) -> Assessment {
    Assessment {
        refusal: Some(Denial::new(codes::RATE_LIMITED, message)),
        ..Assessment::default()
    }
}

impl BehaviourCheck for Limits {
    fn assess(&self, request: &GuardRequest<'_>, tool: &ToolSpec) -> Assessment {
        let now = self.clock.now();
        let Ok(mut windows) = self.windows.lock() else {
            return refuse("limit state unavailable".to_owned());
        };
        // Check every limit first, then reserve, so a refused call reserves nothing.
        let mut reserve = Vec::new();
        for (i, limit) in self.limits.iter().enumerate() {
            if !limit.applies_to(tool.name()) {
                continue;
            }
            let amount = match Self::amount(limit, request.arguments()) {
                Ok(a) => a,
                Err(why) => return refuse(why),
            };
            let key = limit.key(request);
            let (count, total) = match windows.get_mut(&(i, key.clone())) {
                Some(w) => {
                    w.expire(now, limit.window_secs);
                    (w.entries.len(), w.total)
                }
                None => (0, 0),
            };
            if let Some(max) = limit.max_calls
                && (count as u64 >= max || count >= MAX_ENTRIES)
            {
                return refuse(format!(
                    "{}: {count} calls of {} in the last {} s (limit {max})",
                    limit.id,
                    tool.name(),
                    limit.window_secs
                ));
            }
            if let Some((argument, max)) = &limit.max_total
                && (total.saturating_add(amount) > max_units(*max) || count >= MAX_ENTRIES)
            {
                return refuse(format!(
                    "{}: {argument} {} on top of {} in the last {} s exceeds {max}",
                    limit.id,
                    show(amount),
                    show(total),
                    limit.window_secs
                ));
            }
            reserve.push((i, key, amount));
        }
        let mut reserved: Vec<Reservation> = Vec::new();
        let mut full = false;
        for (i, key, amount) in reserve {
            if !windows.contains_key(&(i, key.clone())) && windows.len() >= MAX_WINDOWS {
                windows.retain(|_, w| !w.entries.is_empty());
                if windows.len() >= MAX_WINDOWS {
                    full = true;
                    break;
                }
            }
            let w = windows.entry((i, key.clone())).or_default();
            w.entries.push_back((now, amount));
            w.total += amount;
            reserved.push((i, key, now, amount));
        }
        drop(windows);
        let mut assessment = if full {
            refuse("too many distinct limit keys".to_owned())
        } else {
            Assessment::default()
        };
        if !reserved.is_empty() {
            let windows = Arc::clone(&self.windows);
            assessment.reserved = Reserved::new(move || release(&windows, &reserved));
        }
        assessment
    }
}

#[cfg(test)]
mod tests {
    //! The limits' caps at, below and past their bounds: past either, the call is refused.
    use super::*;
    use agentiam_token::{FixedClock, ScopeSet};
    use serde_json::json;

    fn agent(id: &str) -> crate::Principal {
        crate::Principal::from_workload(
            &crate::VerifiedPeer::verified_elsewhere(&format!("spiffe://acme.test/{id}"), i64::MAX)
                .unwrap(),
            ScopeSet::default(),
        )
    }

    fn refused(limits: &Limits, who: &crate::Principal, args: &Value) -> Option<String> {
        let tool = ToolSpec::new("pay", crate::Risk::Low);
        limits
            .assess(&GuardRequest::new(who, "pay", args), &tool)
            .refusal
            .map(|d| d.code().to_owned())
    }

    #[test]
    fn windows_at_below_and_past_the_cap() {
        let limits = Limits::new(vec![Limit::calls("per-agent", "pay", 60, 1_000)])
            .with_clock(Arc::new(FixedClock::new(1_000)));
        let args = json!({});
        for i in 0..MAX_WINDOWS {
            assert_eq!(refused(&limits, &agent(&format!("a{i}")), &args), None);
        }
        // Every window is live: a new key is refused, a known one still counts.
        assert_eq!(
            refused(&limits, &agent("newcomer"), &args).as_deref(),
            Some(codes::RATE_LIMITED)
        );
        assert_eq!(refused(&limits, &agent("a1"), &args), None);
    }

    #[test]
    fn entries_at_below_and_past_the_cap() {
        let limits = Limits::new(vec![Limit::total(
            "money",
            "pay",
            3_600,
            "amount",
            f64::MAX,
        )])
        .with_clock(Arc::new(FixedClock::new(1_000)));
        let payer = agent("payer");
        let args = json!({"amount": 1});
        for _ in 0..MAX_ENTRIES {
            assert_eq!(refused(&limits, &payer, &args), None);
        }
        // The window remembers 100,000 calls: the next one cannot be counted, so it is refused.
        assert_eq!(
            refused(&limits, &payer, &args).as_deref(),
            Some(codes::RATE_LIMITED)
        );
    }
}
