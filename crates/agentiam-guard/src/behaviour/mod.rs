//! Behaviour checks: is this what an agent in this role does, and within the limits it was given?
//!
//! Two [`crate::BehaviourCheck`]s the guard can run before policy (`GuardBuilder::behaviour`;
//! several at once with [`crate::hooks::BehaviourChecks`]):
//!
//! - [`Baselines`] (`baseline.rs`) learns per-role profiles from the calls the guard allows and
//!   scores each call against them (`guard.anomaly`), with [`LogHistogram`]s
//!   (`histogram.rs`) for distributions;
//! - [`Limits`] (`limits.rs`) counts calls and running totals over sliding windows
//!   (`guard.rate_limited`), reserving each call's count when it is assessed and handing the
//!   reservation back with the call's [`crate::hooks::Assessment`], so the guard releases it if the
//!   call is not allowed.

mod baseline;
mod histogram;
mod limits;

pub use baseline::{
    BASELINE_FORMAT, BaselineSettings, Baselines, DeclaredProfile, MAX_BASELINE_FILE_BYTES,
    RATE_WINDOW_NAMES, RATE_WINDOWS, RoleMap, RoleProfile, hour_of_week, human_number,
    parse_profiles, read_profiles, resource_category,
};
pub use histogram::LogHistogram;
pub use limits::{Limit, LimitScope, Limits};
