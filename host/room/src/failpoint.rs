//! Crash points for the crash-consistency tests. With the `failpoints` feature (on only in
//! the test suite's build), `CLEANROOM_FAILPOINT=<name>` makes the process abort at the
//! point of that name, as a crash there would; without the feature, [`hit`] does nothing.

/// After a sealed output's committed record is durable, before its file is renamed into
/// place.
pub const OUTPUT_RECORDED: &str = "output-recorded";
/// After a sealed output's file is renamed into place, before the run goes on.
pub const OUTPUT_WRITTEN: &str = "output-written";

/// After a DP release's budget entries are durable, before its output is sealed.
pub const BUDGET_RECORDED: &str = "budget-recorded";

/// Abort the process here if the test asked for this point.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if std::env::var("CLEANROOM_FAILPOINT").as_deref() == Ok(name) {
        std::process::abort();
    }
}

/// Does nothing: this build has no crash points.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
