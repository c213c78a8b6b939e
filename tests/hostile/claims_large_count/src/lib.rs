//! Hostile: writes one row per person (`who`, the person's id as a released column) with a
//! count it declares itself, `n = 1000000`, hoping a guard trusts the count. Expected: the
//! host counts distinct privacy units per group itself; every group here holds one person,
//! so nothing per person leaves (and `unit_column = "n"` is refused: not a real unit).
use cleanroom_guest::arrow::array::{Int64Array, StringArray};
use cleanroom_guest::{Error, arc, batch, query, read_view, strings, write_table};
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), Error> {
        let (_, batches) = read_view("impressions")?;
        let mut users = std::collections::BTreeSet::new();
        for b in &batches {
            users.extend(strings(b, "user_id_hash")?.into_iter().flatten());
        }
        let out = batch(vec![
            ("who", arc(StringArray::from_iter_values(users.iter()))),
            (
                "n",
                arc(Int64Array::from_iter_values(
                    users.iter().map(|_| 1_000_000),
                )),
            ),
            (
                "user_id_hash",
                arc(StringArray::from_iter_values(users.iter())),
            ),
        ])?;
        write_table("per_person", &out.schema(), &[out])
    }
}
query::export!(M);
