//! Hostile: writes artifacts past the output cap. Expected: OutputCapExceeded.
use cleanroom_guest::{output, query};
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        let chunk = vec![0x41u8; 1 << 20];
        for i in 0..1024 {
            output::write_artifact(&format!("chunk-{i}"), &chunk);
        }
        Ok(())
    }
}
query::export!(M);
