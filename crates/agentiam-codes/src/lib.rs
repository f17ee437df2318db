//! The registry of agentiam's stable reason codes.
//!
//! Every refusal and error in agentiam carries a dotted reason code (`token.expired`,
//! `guard.scope_missing`, `broker.assertion_replayed`).
//! The codes are the project's central contract: Rust and Python callers, HTTP clients, the CLI
//! and the activity log all match on them, so a code is never renamed or removed.
//!
//! Each crate declares the codes it raises once, in its `codes` module, with [`codes!`]: that
//! declaration is the only place the string is written, and it carries the code's meaning and
//! HTTP status.
//! The macro also builds the crate's `codes::ALL`, from which `docs/reason-codes.md` is
//! generated; a test fails when a published code disappears.
//! Every error type, every refusal (`agentiam_guard::Denial`) and every request for a human
//! (`agentiam_guard::ApprovalRequest`) implements [`ReasonCode`].
//!
//! ```
//! mod codes {
//!     agentiam_codes::codes! {
//!         raised_by = "example";
//!         /// The widget is not there.
//!         WIDGET_MISSING = "example.widget_missing", 404;
//!         /// Not an HTTP answer: only returned to callers.
//!         WIDGET_BROKEN = "example.widget_broken", 0;
//!     }
//! }
//! assert_eq!(codes::WIDGET_MISSING, "example.widget_missing");
//! assert_eq!(codes::ALL[0].meaning(), "The widget is not there.");
//! assert_eq!(codes::ALL[1].status, None);
//!
//! #[derive(Debug)]
//! struct Missing;
//! impl agentiam_codes::ReasonCode for Missing {
//!     fn code(&self) -> &str { codes::WIDGET_MISSING }
//! }
//! use agentiam_codes::ReasonCode as _;
//! assert_eq!(Missing.code(), "example.widget_missing");
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Something that carries a stable reason code: every agentiam error and refusal.
pub trait ReasonCode {
    /// The stable, dotted reason code (`family.reason`).
    fn code(&self) -> &str;
}

/// One registered code: what it means, the HTTP status it is answered with, and which part
/// of agentiam raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeInfo {
    /// The code (`family.reason`).
    pub code: &'static str,
    /// Its documentation, as written above its declaration (one or more lines).
    pub doc: &'static str,
    /// The HTTP status it is answered with, when it is one (`None`: returned to callers only).
    pub status: Option<u16>,
    /// The crate (or package) that raises it.
    pub raised_by: &'static str,
}

impl CodeInfo {
    /// The documentation as one line of prose.
    pub fn meaning(&self) -> String {
        self.doc.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The family: the part before the dot (`token`, `guard`, ...).
    pub fn family(&self) -> &'static str {
        self.code.split('.').next().unwrap_or(self.code)
    }
}

/// The HTTP status given to a code in a declaration: 0 means none.
#[doc(hidden)]
pub const fn status(code: u16) -> Option<u16> {
    if code == 0 { None } else { Some(code) }
}

/// Whether `code` is a well-formed reason code: a lower-case family, one dot, a lower-case
/// reason, both made of ASCII letters, digits and underscores.
///
/// ```
/// assert!(agentiam_codes::is_well_formed("token.expired"));
/// assert!(!agentiam_codes::is_well_formed("Token.Expired"));
/// assert!(!agentiam_codes::is_well_formed("token"));
/// ```
pub fn is_well_formed(code: &str) -> bool {
    let part = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    matches!(code.split_once('.'), Some((family, reason)) if part(family) && part(reason))
}

/// Declares a crate's reason codes: one `pub const` per code, documented, and `ALL`, the
/// crate's part of the registry.
///
/// Each entry is doc comments (the meaning), then `NAME = "family.reason", status;` where
/// `status` is the HTTP status the code is answered with, or 0 when it is only returned to
/// callers. See the crate documentation for an example.
#[macro_export]
macro_rules! codes {
    (
        raised_by = $raised_by:literal;
        $( $(#[doc = $doc:literal])+ $name:ident = $code:literal, $status:literal; )+
    ) => {
        $(
            $(#[doc = $doc])+
            pub const $name: &str = $code;
        )+
        /// Every reason code this crate raises, in declaration order: its part of the
        /// registry `docs/reason-codes.md` is generated from.
        pub const ALL: &[$crate::CodeInfo] = &[
            $(
                $crate::CodeInfo {
                    code: $name,
                    doc: concat!($($doc, "\n"),+),
                    status: $crate::status($status),
                    raised_by: $raised_by,
                },
            )+
        ];
    };
}
