//! Query module: a conversion funnel by days-to-convert.
//!
//! For every (campaign, user) the module takes the user's first impression of the
//! campaign and the user's first conversion at or after it, and counts, per campaign, how
//! many users converted within 0, 1, ..., `max_days` days (cumulative), with their
//! conversion value. This needs per-user ordering across two members' views, which is not
//! one SQL statement over the guarded views.
//!
//! Params (JSON, all optional):
//! `{"impressions": "impressions", "conversions": "conversions", "max_days": 7, "seconds_per_day": 86400}`
//!
//! Output table `funnel(campaign utf8, day int64, impressed_users int64,
//! converted_users int64, conversion_value float64)`; metrics `impressed_users`,
//! `converted_users`.

use std::collections::{BTreeMap, HashMap};

use cleanroom_guest::arrow::array::{Float64Array, Int64Array, StringArray};
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

        // campaign -> (impressed users, per-day converted users and value)
        let days = usize::try_from(p.max_days).map_err(|e| e.to_string())? + 1;
        let mut per_campaign: BTreeMap<String, (i64, Vec<i64>, Vec<f64>)> = BTreeMap::new();
        for ((campaign, user), t_imp) in &first_imp {
            let entry = per_campaign
                .entry(campaign.clone())
                .or_insert_with(|| (0, vec![0; days], vec![0.0; days]));
            entry.0 += 1;
            let Some(list) = convs.get(user) else {
                continue;
            };
            let Some(&(t_conv, value)) = list.iter().find(|(t, _)| t >= t_imp) else {
                continue;
            };
            let day = (t_conv - t_imp) / p.seconds_per_day;
            if let Ok(day) = usize::try_from(day) {
                // Cumulative: converted within `d` days for every d >= day.
                for d in day..days {
                    entry.1[d] += 1;
                    entry.2[d] += value;
                }
            }
        }

        let (mut c, mut d, mut imp_users, mut conv_users, mut value) =
            (vec![], vec![], vec![], vec![], vec![]);
        let (mut total_imp, mut total_conv) = (0i64, 0i64);
        for (campaign, (n_imp, conv, val)) in &per_campaign {
            total_imp += n_imp;
            total_conv += conv[days - 1];
            for day in 0..days {
                c.push(campaign.clone());
                d.push(day as i64);
                imp_users.push(*n_imp);
                conv_users.push(conv[day]);
                value.push(val[day]);
            }
        }
        let out = batch(vec![
            ("campaign", arc(StringArray::from(c))),
            ("day", arc(Int64Array::from(d))),
            ("impressed_users", arc(Int64Array::from(imp_users))),
            ("converted_users", arc(Int64Array::from(conv_users))),
            ("conversion_value", arc(Float64Array::from(value))),
        ])?;
        cleanroom_guest::write_table("funnel", &out.schema(), &[out])?;
        output::metric("impressed_users", total_imp as f64);
        output::metric("converted_users", total_conv as f64);
        Ok(())
    }
}

query::export!(Funnel);
