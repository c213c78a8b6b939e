//! Hostile: traps (wasm `unreachable`). Expected: ModuleTrapped, host fine.
use cleanroom_guest::query;
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        std::process::abort()
    }
}
query::export!(M);
