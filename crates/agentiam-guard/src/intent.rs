//! How a call stands against the task's declared intent.
//!
//! An intent is a task token narrowed to what the user asked for before the agent read anything
//! untrusted (`TokenRequest::declaring_intent`, `ExchangeRequest::declaring_intent`): its scopes
//! fix, where the request fixes them, the values of the arguments that decide what a call does
//! (`payments:send{recipient='DE89%203704…',amount<=120}`, `mail:send{to=['alice@acme.example']}`).
//! A call whose every such argument the intent constrains (to a value, a set or a range) is
//! *intent-bound*: an injection read later cannot have chosen it beyond what the user allowed.
//! Policy sees this as `context.intent`.
//!
//! The guard trusts an intent only while the task of the tokens it was declared from is
//! untainted ([`Principal::intent_ancestry_key`]): taint under the intent's own task key came
//! after the intent existed, taint under its ancestors' may have come before and chosen it.

use agentiam_token::ScopeRequest;
use serde_json::Value;

use crate::request::{Principal, ToolSpec};

/// A call measured against the principal's declared intent; policy reads it as
/// `context.intent` (`declared`, `bound`, `trusted`, `fixed`, `free`). Decisions carry it
/// ([`Decision::intent`](crate::Decision::intent)) for the activity log and for the human
/// an [`ApprovalRequest`](crate::ApprovalRequest) shows it to (signed over).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IntentCheck {
    /// The credential carries a declared intent.
    pub declared: bool,
    /// The intent's id (the `jti` of the token that declared it); empty when none is declared.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The declared intent: the credential's scopes; empty when none is declared.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scopes: String,
    /// Nothing untrusted was read under the tokens the intent was declared from.
    pub trusted: bool,
    /// The call's arguments that matter and that the intent constrains (to a value, a set or a
    /// range) in the scope covering the call, sorted.
    pub fixed: Vec<String>,
    /// The call's arguments that matter (the tool's intent arguments, or all of them) and that
    /// the intent leaves free to take any value, sorted.
    pub free: Vec<String>,
}

impl IntentCheck {
    /// No declared intent.
    pub fn undeclared() -> Self {
        Self::default()
    }

    /// Whether the call is intent-bound: a trusted intent constrains every argument that matters.
    pub fn is_bound(&self) -> bool {
        self.declared && self.trusted && self.free.is_empty()
    }

    /// Measures a call already covered by the principal's scopes. Of the scopes that cover it,
    /// the one leaving the fewest arguments free counts.
    pub(crate) fn of(
        principal: &Principal,
        tool: &ToolSpec,
        arguments: &Value,
        trusted: bool,
    ) -> Self {
        let Some(id) = principal.intent() else {
            return Self::undeclared();
        };
        let present: Vec<&str> = match arguments {
            Value::Object(map) => map.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        // Where an outbound call goes always matters, whatever the tool names.
        let outbound = tool.outbound_arguments().unwrap_or_default();
        let matters: Vec<&str> = match tool.intent_arguments() {
            Some(names) => present
                .iter()
                .copied()
                .filter(|p| names.iter().chain(outbound).any(|n| n == p))
                .collect(),
            None => present,
        };
        let request = ScopeRequest::new(tool.resource(), tool.action()).with_args(arguments);
        let best = principal
            .scopes()
            .covering(&request)
            .into_iter()
            .map(|scope| {
                let fixed: Vec<&str> = scope.constrained_arguments().collect();
                let mut free: Vec<String> = matters
                    .iter()
                    .filter(|m| !fixed.contains(m))
                    .map(|m| (*m).to_owned())
                    .collect();
                free.sort();
                let mut fixed: Vec<String> = fixed
                    .into_iter()
                    .filter(|f| matters.contains(f))
                    .map(str::to_owned)
                    .collect();
                fixed.sort();
                fixed.dedup();
                (fixed, free)
            })
            .min_by_key(|(_, free)| free.len());
        let (fixed, free) = best.unwrap_or_else(|| {
            // Not covered (the scope check refuses such calls first): everything is free.
            let mut free: Vec<String> = matters.iter().map(|m| (*m).to_owned()).collect();
            free.sort();
            (Vec::new(), free)
        });
        Self {
            declared: true,
            id: id.to_owned(),
            scopes: principal.scopes().to_string(),
            trusted,
            fixed,
            free,
        }
    }
}

/// Where a tool that reaches the network at an agent-chosen URL (fetch, webhook, post) would
/// send the call: the hosts of its outbound arguments ([`ToolSpec::with_outbound_arguments`])
/// and whether any is outside the guard's outbound allowlist. Policy reads it as
/// `context.outbound`; in a tainted session the default policy asks a human
/// (`guard.outbound_unlisted`) unless every host is listed or the call is intent-bound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundCheck {
    /// The tool has outbound arguments and the call passes at least one.
    pub declared: bool,
    /// The hosts the call would reach, sorted.
    pub hosts: Vec<String>,
    /// Some host is not on the allowlist, or some outbound argument is not a URL whose host
    /// every client reads the same way (then it cannot be checked, and counts as unlisted).
    pub unlisted: bool,
}

impl OutboundCheck {
    pub(crate) fn of(
        tool: &ToolSpec,
        arguments: &Value,
        allowed: &agentiam_filter::ExfiltrationCheck,
    ) -> Self {
        let (Some(names), Value::Object(map)) = (tool.outbound_arguments(), arguments) else {
            return Self::default();
        };
        let mut check = Self::default();
        for value in names.iter().filter_map(|n| map.get(n)) {
            check.declared = true;
            let texts: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            for text in texts {
                match text
                    .as_str()
                    .map(agentiam_filter::ExfiltrationCheck::destination)
                {
                    Some(Ok(Some(host))) => {
                        check.unlisted |= !allowed.allows(&host);
                        check.hosts.push(host);
                    }
                    // Not a URL, not readable the same way by every client, or not a string.
                    _ => check.unlisted = true,
                }
            }
        }
        check.hosts.sort();
        check.hosts.dedup();
        check
    }
}
