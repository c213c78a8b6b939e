//! Hostile: an infinite loop. Expected: stopped at the deadline (DeadlineExceeded).
use cleanroom_guest::query;
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
}
query::export!(M);
