//! The exit code contract, in one place, for scripts and cron.
//!
//! - 0: nothing unexpected (findings may exist, all expected or `info`).
//! - 1: unexpected findings of severity `low` or above.
//! - 2: the run could not do its job: bad config or input, a scope that
//!   could not be scanned, or a collection that could not be listed in
//!   full. Takes precedence over 1. The report is printed in every case.

use crate::report::Summary;

/// Nothing unexpected.
pub const CLEAN: u8 = 0;
/// Unexpected findings.
pub const FINDINGS: u8 = 1;
/// The run could not do its job.
pub const FAILED: u8 = 2;

/// Derives the exit code from a report's counts and its run-level errors.
pub fn exit_code(summary: &Summary, errors: usize) -> u8 {
    if errors > 0 || summary.failed_scopes > 0 || summary.incomplete_collections > 0 {
        FAILED
    } else if summary.needs_attention > 0 {
        FINDINGS
    } else {
        CLEAN
    }
}
