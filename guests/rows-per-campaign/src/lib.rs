//! Query module: which users each campaign reached, as (campaign, user_id_hash) pairs, for
//! the host to count the distinct users per campaign (workload `guards.unit_column =
//! "user_id_hash"`). The module counts nothing itself: a count it wrote would be its claim.
use cleanroom_guest::arrow::array::StringArray;
use cleanroom_guest::{Error, arc, batch, query, read_view, strings, write_table};

struct RowsPerCampaign;

impl query::Guest for RowsPerCampaign {
    fn run(_params: String) -> Result<(), Error> {
        cleanroom_guest::init(); // panic messages go to the run's log
        let (_, batches) = read_view("impressions")?;
        let mut pairs = std::collections::BTreeSet::<(String, String)>::new();
        for b in &batches {
            let campaigns = strings(b, "campaign")?;
            let users = strings(b, "user_id_hash")?;
            for (c, u) in campaigns.into_iter().zip(users) {
                if let (Some(c), Some(u)) = (c, u) {
                    pairs.insert((c, u));
                }
            }
        }
        let out = batch(vec![
            (
                "campaign",
                arc(StringArray::from_iter_values(pairs.iter().map(|p| &p.0))),
            ),
            (
                "user_id_hash",
                arc(StringArray::from_iter_values(pairs.iter().map(|p| &p.1))),
            ),
        ])?;
        write_table("rows_per_campaign", &out.schema(), &[out])
    }
}

query::export!(RowsPerCampaign);
