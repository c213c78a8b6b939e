//! Hostile: allocates until something gives. Expected: MemoryLimitExceeded.
use cleanroom_guest::query;
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![1u8; 16 << 20]));
        }
    }
}
query::export!(M);
