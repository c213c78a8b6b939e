//! Hostile: asks for a view that is not among its inputs. Expected: ViewNotInInputs.
use cleanroom_guest::{input, output, query};
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        let bytes = input::read_batch("other_members_secrets", 0).unwrap_or_default();
        output::write_artifact("loot", &bytes);
        Ok(())
    }
}
query::export!(M);
