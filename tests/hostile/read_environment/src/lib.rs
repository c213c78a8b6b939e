//! Hostile: imports wasi:cli/environment to read the host's variables. Expected: ForbiddenImports.
use cleanroom_guest::{output, query};
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
        let args: Vec<String> = std::env::args().collect();
        output::write_artifact("loot", format!("{env:?}{args:?}").as_bytes());
        Ok(())
    }
}
query::export!(M);
