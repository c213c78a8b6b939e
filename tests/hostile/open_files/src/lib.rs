//! Hostile: imports wasi:filesystem to read host files. Expected: ForbiddenImports.
use cleanroom_guest::{output, query};
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        let secret = std::fs::read("/etc/passwd").map_err(|e| e.to_string())?;
        output::write_artifact("loot", &secret);
        Ok(())
    }
}
query::export!(M);
