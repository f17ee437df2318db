//! Merging into a task's taint that a database holds, without reading all of it.
//!
//! A stored taint can hold [`MAX_TASK_FINGERPRINTS`] fingerprints; reading them all to add a
//! few would make every extension cost the whole set. [`plan_merge`] walks `add` exactly as
//! [`TaskTaint::merge`] does, but over what the database can answer cheaply: how many sources
//! and fingerprints it holds, and which of `add`'s are among them. The caps therefore apply
//! to the same items in the same order as in memory, and the result is identical.

use std::collections::HashSet;

use crate::{MAX_TAINT_SOURCES, MAX_TASK_FINGERPRINTS, TaskTaint};

/// What a database holds for a task, without its sources and fingerprints themselves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StoredCounts {
    pub(crate) sources: usize,
    pub(crate) fingerprints: usize,
    pub(crate) tainted: bool,
    pub(crate) overflowed: bool,
}

/// What merging `add` writes: the items to insert and the new counts and flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MergePlan<'a> {
    pub(crate) new_sources: Vec<&'a str>,
    pub(crate) new_fingerprints: Vec<u64>,
    pub(crate) counts: StoredCounts,
}

/// Plans `stored.merge(add)`, given which of `add`'s sources and fingerprints are stored
/// already (`present_*`; items of other tasks or not in `add` do not matter).
pub(crate) fn plan_merge<'a>(
    stored: StoredCounts,
    add: &'a TaskTaint,
    present_sources: &HashSet<String>,
    present_fingerprints: &HashSet<u64>,
) -> MergePlan<'a> {
    let mut counts = stored;
    let mut new_sources = Vec::new();
    // As `TaskTaint::add_source`: below the cap a source is inserted (a no-op when present);
    // at the cap every further source, even one already present, only sets `tainted`.
    for source in &add.sources {
        if counts.sources < MAX_TAINT_SOURCES {
            if !present_sources.contains(source) {
                new_sources.push(source.as_str());
                counts.sources += 1;
            }
        } else {
            counts.tainted = true;
        }
    }
    let mut new_fingerprints = Vec::new();
    // As `TaskTaint::add_fingerprints`: the first fingerprint met at the cap, present or not,
    // marks the set overflowed and ends the walk.
    for &f in &add.fingerprints {
        if counts.fingerprints >= MAX_TASK_FINGERPRINTS {
            counts.overflowed = true;
            break;
        }
        if !present_fingerprints.contains(&f) {
            new_fingerprints.push(f);
            counts.fingerprints += 1;
        }
    }
    counts.tainted |= add.tainted;
    counts.overflowed |= add.overflowed;
    MergePlan {
        new_sources,
        new_fingerprints,
        counts,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "test")]
mod tests {
    use super::*;

    /// Applies the plan to `stored` as a database would, and compares with `TaskTaint::merge`.
    fn check(stored: &TaskTaint, add: &TaskTaint) {
        let counts = StoredCounts {
            sources: stored.sources.len(),
            fingerprints: stored.fingerprints.len(),
            tainted: stored.tainted,
            overflowed: stored.overflowed,
        };
        let present_sources = add
            .sources
            .iter()
            .filter(|s| stored.sources.contains(*s))
            .cloned()
            .collect();
        let present_fingerprints = add
            .fingerprints
            .iter()
            .filter(|f| stored.fingerprints.contains(*f))
            .copied()
            .collect();
        let plan = plan_merge(counts, add, &present_sources, &present_fingerprints);

        let mut planned = stored.clone();
        planned
            .sources
            .extend(plan.new_sources.iter().map(|s| (*s).to_owned()));
        planned.fingerprints.extend(&plan.new_fingerprints);
        planned.tainted = plan.counts.tainted;
        planned.overflowed = plan.counts.overflowed;
        assert_eq!(plan.counts.sources, planned.sources.len());
        assert_eq!(plan.counts.fingerprints, planned.fingerprints.len());

        let mut merged = stored.clone();
        merged.merge(add);
        assert_eq!(planned, merged);
    }

    fn taint(
        sources: impl IntoIterator<Item = usize>,
        fps: impl Iterator<Item = u64>,
    ) -> TaskTaint {
        TaskTaint {
            sources: sources.into_iter().map(|i| format!("s{i:03}")).collect(),
            fingerprints: fps.collect(),
            tainted: false,
            overflowed: false,
        }
    }

    #[test]
    fn the_plan_is_the_in_memory_merge() {
        let full = MAX_TASK_FINGERPRINTS as u64;
        let cases = [
            (taint(0..0, 0..0), taint(0..3, 0..3)),
            (taint(0..5, 0..5), taint(3..8, 3..8)),
            // Sources: room for 4 more, 2 of the offered are present already.
            (taint(0..60, 0..0), taint(58..70, 0..0)),
            // Sources full: a present one still sets `tainted`.
            (taint(0..64, 0..0), taint(0..1, 0..0)),
            // Fingerprints: room for 6, some offered are present, the walk stops at the cap.
            (taint(0..0, 0..full - 6), taint(0..0, full - 10..full + 5)),
            // Exactly filled: no overflow.
            (taint(0..0, 0..full - 3), taint(0..0, full - 3..full)),
            // Full: a present fingerprint still overflows.
            (taint(0..0, 0..full), taint(0..0, 0..1)),
            (taint(0..0, 0..full), taint(0..0, 0..0)),
        ];
        for (stored, add) in &cases {
            check(stored, add);
        }
        let flags = TaskTaint {
            tainted: true,
            overflowed: true,
            ..TaskTaint::default()
        };
        check(&taint(0..2, 0..2), &flags);
        check(&flags, &taint(0..2, 0..2));
    }
}
