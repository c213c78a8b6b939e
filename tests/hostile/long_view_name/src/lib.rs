//! Hostile: asks for a view whose name is 100 kB of text (as if it had encoded data it read
//! into the name) so that the host echoes it into an error, the audit log or stderr.
//! Expected: ViewNotInInputs with the name bounded (a hash, not the text).
use cleanroom_guest::{input, query};
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        let name = "LEAKED-user-4711-spent-1234;".repeat(100_000 / 28);
        let _ = input::schema(&name);
        Ok(())
    }
}
query::export!(M);
