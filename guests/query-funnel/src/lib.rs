//! Query module: a conversion funnel by days-to-convert.
//!
//! For every (campaign, user) the module takes the user's first impression of the
//! campaign and the user's first conversion at or after it, and writes how many days it took
//! (within `max_days`, else -1). The host counts the distinct users per (campaign, days)
//! (workload `guards.unit_column = "user_id_hash"`): the module counts nothing that leaves.
//! This needs per-user ordering across two members' views, which is not one SQL statement
//! over the guarded views.
//!
//! Params (JSON, all optional):
//! `{"impressions": "impressions", "conversions": "conversions", "max_days": 7, "seconds_per_day": 86400}`
//!
//! Output table `funnel(campaign utf8, days_to_convert int64, user_id_hash utf8)`, one row
//! per (campaign, user); metrics `impressed_users`, `converted_users`, `conversion_value`.

use std::collections::HashMap;

use cleanroom_guest::arrow::array::{Int64Array, StringArray};
use cleanroom_guest::{Error, arc, batch, floats, ints, output, query, read_view, strings};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Params {
    impressions: String,
    conversions: String,
    max_days: i64,
    seconds_per_day: i64,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            impressions: "impressions".into(),
            conversions: "conversions".into(),
            max_days: 7,
            seconds_per_day: 86_400,
        }
    }
}

struct Funnel;

impl query::Guest for Funnel {
    fn run(params: String) -> Result<(), Error> {
        cleanroom_guest::init();
        let p: Params = if params.trim().is_empty() {
            Params::default()
        } else {
            serde_json::from_str(&params).map_err(|e| format!("bad params: {e}"))?
        };
        if p.max_days < 0 || p.max_days > 366 || p.seconds_per_day <= 0 {
            return Err("max_days must be 0..=366 and seconds_per_day positive".into());
        }

        // First impression per (campaign, user).
        let mut first_imp: HashMap<(String, String), i64> = HashMap::new();
        let (_, imp) = read_view(&p.impressions)?;
        for b in &imp {
            let users = strings(b, "user_id_hash")?;
            let camps = strings(b, "campaign")?;
            let ts = ints(b, "ts")?;
            for ((u, c), t) in users.into_iter().zip(camps).zip(ts) {
                if let (Some(u), Some(c), Some(t)) = (u, c, t) {
                    let e = first_imp.entry((c, u)).or_insert(t);
                    *e = (*e).min(t);
                }
            }
        }

        // Conversions per user, sorted by time.
        let mut convs: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
        let (_, conv) = read_view(&p.conversions)?;
        for b in &conv {
            let users = strings(b, "user_id_hash")?;
            let ts = ints(b, "ts")?;
            let vals = floats(b, "value")?;
            for ((u, t), v) in users.into_iter().zip(ts).zip(vals) {
                if let (Some(u), Some(t)) = (u, t) {
                    convs.entry(u).or_default().push((t, v.unwrap_or(0.0)));
                }
            }
        }
        for v in convs.values_mut() {
            v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
        }

        // One row per (campaign, user): days to convert, or -1.
        let (mut c, mut d, mut u) = (vec![], vec![], vec![]);
        let (mut total_conv, mut total_value) = (0i64, 0.0f64);
        let mut first: Vec<_> = first_imp.iter().collect();
        first.sort();
        for ((campaign, user), t_imp) in first {
            let conv = convs
                .get(user)
                .and_then(|list| list.iter().find(|(t, _)| t >= t_imp))
                .filter(|(t_conv, _)| (t_conv - t_imp) / p.seconds_per_day <= p.max_days);
            let days = match conv {
                Some(&(t_conv, value)) => {
                    total_conv += 1;
                    total_value += value;
                    (t_conv - t_imp) / p.seconds_per_day
                }
                None => -1,
            };
            c.push(campaign.clone());
            d.push(days);
            u.push(user.clone());
        }
        let total_imp = c.len() as i64;
        let out = batch(vec![
            ("campaign", arc(StringArray::from(c))),
            ("days_to_convert", arc(Int64Array::from(d))),
            ("user_id_hash", arc(StringArray::from(u))),
        ])?;
        cleanroom_guest::write_table("funnel", &out.schema(), &[out])?;
        output::metric("impressed_users", total_imp as f64);
        output::metric("converted_users", total_conv as f64);
        output::metric("conversion_value", total_value);
        Ok(())
    }
}

query::export!(Funnel);
