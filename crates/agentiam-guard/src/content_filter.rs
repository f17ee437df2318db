//! The injection filter (`agentiam-filter`) as the guard's [`ContentFilter`]: a thin adapter.

use serde_json::Value;

use agentiam_filter::{Flagged, InjectionFilter, Verdict};
use agentiam_identity::ToolDescriptor;

use crate::hooks::{ContentFilter, Finding, OutputVerdict};
use crate::request::{Risk, ToolSpec};

impl From<Flagged> for Finding {
    fn from(flagged: Flagged) -> Self {
        Finding {
            detail: flagged.detail,
            score: flagged.score,
        }
    }
}

impl ContentFilter for InjectionFilter {
    /// See [`InjectionFilter::check_arguments`]: data-carrying URLs anywhere in the arguments
    /// (and, with `scan_all_arguments`, injected or unscannably long strings).
    fn scan_arguments(&self, _tool: &ToolSpec, arguments: &Value) -> Option<Finding> {
        self.check_arguments(arguments).map(Finding::from)
    }

    /// Output that scores as injection is `Injection`; output from a tool with untrusted
    /// output, or output the scan could not examine completely (`truncated`), is `Untrusted`.
    /// JSON output is also scanned string by string ([`InjectionFilter::scan_structured`]); the
    /// transformer layer, where loaded, reads all of a high- or irreversible-risk tool's output,
    /// not only what the screen does not clear.
    fn scan_output(&self, tool: &ToolSpec, output: &str) -> OutputVerdict {
        let scan = if tool.risk() >= Risk::High && self.has_encoder() {
            self.clone()
                .with_encoder_reading_all(true)
                .scan_structured(output)
        } else {
            self.scan_structured(output)
        };
        match scan.verdict {
            Verdict::Injection => {
                // What the approver reads: the rules, where, and the flagged text itself.
                let mut finding: Finding = scan.flagged().into();
                if let Some(path) = &scan.within {
                    finding.detail.push_str(&format!(" in {path}"));
                }
                if let Some(excerpt) = &scan.excerpt {
                    finding.detail.push_str(&format!(": \"{excerpt}\""));
                }
                OutputVerdict::Injection(finding)
            }
            Verdict::Clean if tool.untrusted_output() || scan.truncated => OutputVerdict::Untrusted,
            Verdict::Clean => OutputVerdict::Clean,
        }
    }

    /// See [`InjectionFilter::check_tool`]: the guard refuses to build with a flagged
    /// description (`guard.tool_poisoning`).
    fn scan_tool(&self, descriptor: &ToolDescriptor) -> Option<Finding> {
        self.check_tool(descriptor).map(Finding::from)
    }
}
