//! Hostile: runs a five-way self join on a skewed key through the host's `query` import
//! (every join an equality on a join key, so the query rules admit it), which would take the
//! host's engine hours. Expected: stopped at the run's deadline (DeadlineExceeded).
use cleanroom_guest::{input, query};
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        // Right-nested, so every hash table holds one view (the build side) and the
        // intermediate results stream through: little memory, hours of CPU.
        let _ = input::query(
            "SELECT count(*) AS n FROM impressions e JOIN (\
               SELECT d.user_id_hash FROM impressions d JOIN (\
                 SELECT c.user_id_hash FROM impressions c JOIN (\
                   SELECT b.user_id_hash FROM impressions b JOIN impressions a \
                   ON b.user_id_hash = a.user_id_hash) ab \
                 ON c.user_id_hash = ab.user_id_hash) abc \
               ON d.user_id_hash = abc.user_id_hash) abcd \
             ON e.user_id_hash = abcd.user_id_hash",
        );
        Ok(())
    }
}
query::export!(M);
