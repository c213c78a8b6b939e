//! Hostile: asks for an artifact that is not among its inputs. Expected: ArtifactNotInInputs.
use cleanroom_guest::{inference, input, output};
struct M;
impl inference::Guest for M {
    fn infer(_: String) -> Result<(), String> {
        let bytes = input::read_artifact("someone_elses_model");
        output::write_artifact("loot", &bytes);
        Ok(())
    }
}
inference::export!(M);
