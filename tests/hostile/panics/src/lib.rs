//! Hostile: panics. Expected: ModuleTrapped (panic = abort), the panic message in the log.
use cleanroom_guest::query;
struct M;
impl query::Guest for M {
    fn run(params: String) -> Result<(), String> {
        cleanroom_guest::init();
        let v: Vec<u8> = Vec::new();
        panic!(
            "module panicked on purpose ({} params bytes, {:?})",
            params.len(),
            v.first()
        );
    }
}
query::export!(M);
