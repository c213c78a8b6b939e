//! Crash points for the crash-consistency tests. With the `failpoints` feature (on only in
//! the test suite's build), `CLEANROOM_FAILPOINT=<name>` makes the process abort at the
//! point of that name, as a crash there would, and `CLEANROOM_PAUSE=<name>` holds it there
//! until the test lets it go; without the feature, [`hit`] and [`pause`] do nothing.

/// After a sealed output's committed record is durable, before its file is renamed into
/// place.
pub const OUTPUT_RECORDED: &str = "output-recorded";
/// After a sealed output's file is renamed into place, before the run goes on.
pub const OUTPUT_WRITTEN: &str = "output-written";

/// After a DP release's budget entries are durable, before its output is sealed.
pub const BUDGET_RECORDED: &str = "budget-recorded";

/// After a run's inputs are registered (keys released, Parquet footers pinned), before its
/// program runs.
pub const INPUTS_LOADED: &str = "inputs-loaded";

/// After a run's guards, before its last suspension check and its sealing: where a test
/// pauses a run in flight ([`pause`]).
pub const BEFORE_SEAL: &str = "before-seal";

/// Pause here if the test asked for this point (`CLEANROOM_PAUSE=<name>`): write
/// `$CLEANROOM_PAUSE_UNTIL.reached`, then wait (at most a minute) until the file
/// `$CLEANROOM_PAUSE_UNTIL` exists.
#[cfg(feature = "failpoints")]
pub fn pause(name: &str) {
    if std::env::var("CLEANROOM_PAUSE").as_deref() != Ok(name) {
        return;
    }
    let Ok(until) = std::env::var("CLEANROOM_PAUSE_UNTIL") else {
        return;
    };
    let _ = std::fs::write(format!("{until}.reached"), b"");
    for _ in 0..3000 {
        if std::path::Path::new(&until).exists() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Does nothing: this build has no crash points.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn pause(_name: &str) {}

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
