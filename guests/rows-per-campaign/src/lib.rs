use cleanroom_guest::arrow::array::{Int64Array, StringArray};
use cleanroom_guest::{Error, arc, batch, query, read_view, strings, write_table};

struct RowsPerCampaign;

impl query::Guest for RowsPerCampaign {
    fn run(_params: String) -> Result<(), Error> {
        cleanroom_guest::init(); // panic messages go to the run's log
        let (_, batches) = read_view("impressions")?;
        let mut counts = std::collections::BTreeMap::<String, i64>::new();
        for b in &batches {
            for c in strings(b, "campaign")?.into_iter().flatten() {
                *counts.entry(c).or_default() += 1;
            }
        }
        let out = batch(vec![
            (
                "campaign",
                arc(StringArray::from_iter_values(counts.keys())),
            ),
            (
                "rows",
                arc(Int64Array::from_iter_values(counts.values().copied())),
            ),
        ])?;
        write_table("rows_per_campaign", &out.schema(), &[out])
    }
}

query::export!(RowsPerCampaign);
