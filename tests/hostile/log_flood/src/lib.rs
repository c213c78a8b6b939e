//! Hostile: writes far more log than the cap. Expected: the log is capped and marked
//! truncated; the run itself succeeds.
use cleanroom_guest::{log, query};
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        let line = "flood ".repeat(2000);
        for _ in 0..100_000 {
            log::write(log::Level::Info, &line);
        }
        Ok(())
    }
}
query::export!(M);
