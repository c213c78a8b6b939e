//! Differential privacy settings: a dataset's budget in the contract, a workload's request,
//! and ε as an exact quantity.
//!
//! ε is accounted in whole micro-units ([`Epsilon`]): a contract or workload value with more
//! than six decimals is refused, so the ledger (sums of spends, in the audit log and at each
//! broker) is exact: a budget of 1.0 allows exactly ten runs of 0.1, never nine or eleven
//! through rounding.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The largest ε a contract may declare for one dataset (a budget this large protects
/// nothing; a typo such as `epsilon = 1e9` is refused rather than honoured).
pub const MAX_EPSILON: f64 = 100.0;
/// The largest δ a release may spend: δ is the probability the guarantee fails outright.
pub const MAX_DELTA: f64 = 1e-3;

/// ε in micro-units (10⁻⁶). Only [`Epsilon::parse`] makes one from a decimal value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epsilon(u64);

impl Epsilon {
    pub const ZERO: Epsilon = Epsilon(0);

    /// `x` as an exact ε: finite, above 0, at most [`MAX_EPSILON`], at most six decimals.
    pub fn parse(x: f64) -> Result<Self, &'static str> {
        if !x.is_finite() || x <= 0.0 {
            return Err("must be a number above 0");
        }
        if x > MAX_EPSILON {
            return Err("must be at most 100");
        }
        let micros = (x * 1e6).round();
        if (x * 1e6 - micros).abs() > 1e-6 * micros.max(1.0) {
            return Err("has more than six decimals (ε is accounted in units of 0.000001)");
        }
        Ok(Epsilon(micros as u64))
    }

    pub fn from_micros(micros: u64) -> Self {
        Epsilon(micros)
    }
    pub fn micros(self) -> u64 {
        self.0
    }
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
    pub fn saturating_sub(self, o: Epsilon) -> Epsilon {
        Epsilon(self.0.saturating_sub(o.0))
    }
    pub fn checked_add(self, o: Epsilon) -> Option<Epsilon> {
        self.0.checked_add(o.0).map(Epsilon)
    }
}

impl std::fmt::Display for Epsilon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = format!("{}.{:06}", self.0 / 1_000_000, self.0 % 1_000_000);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        f.pad(s)
    }
}

/// `[datasets.dp]`: the dataset's differential-privacy budget and contribution bounds. A
/// dataset with it may be read by workloads that declare `dp`; every such run spends from
/// the budget (in the room's audit log and at the owner's broker).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetDp {
    /// Total ε over all DP releases from this dataset.
    pub epsilon: f64,
    /// The most one run may spend.
    pub max_epsilon_per_run: f64,
    /// δ each release spends (the chance a group key is released through the threshold on
    /// neighbouring data); over n releases the total is n·δ.
    #[serde(default = "default_delta")]
    pub delta: f64,
    /// Each privacy unit counts in at most this many groups of a release (its other groups
    /// are dropped before counting).
    #[serde(default = "one")]
    pub max_groups_per_unit: u64,
    /// Each privacy unit adds at most this many rows to a group's COUNT (and as many values to
    /// its SUM).
    #[serde(default = "one")]
    pub max_rows_per_unit: u64,
    /// `[low, high]` per metric column: every value SUM or AVG reads is clamped into it.
    #[serde(default)]
    pub bounds: BTreeMap<String, [f64; 2]>,
}

fn default_delta() -> f64 {
    1e-9
}
fn one() -> u64 {
    1
}

impl DatasetDp {
    /// The total budget (validated at contract parse).
    pub fn total(&self) -> Epsilon {
        Epsilon::parse(self.epsilon).unwrap_or(Epsilon::ZERO)
    }
    /// The per-run cap (validated at contract parse).
    pub fn per_run_cap(&self) -> Epsilon {
        Epsilon::parse(self.max_epsilon_per_run).unwrap_or(Epsilon::ZERO)
    }
    /// Check the values; `Err((field, reason))`.
    pub(crate) fn validate(
        &self,
        is_metric: impl Fn(&str) -> bool,
    ) -> Result<(), (String, String)> {
        let bad = |f: &str, r: &str| Err((format!("dp.{f}"), r.to_string()));
        let total = match Epsilon::parse(self.epsilon) {
            Ok(e) => e,
            Err(r) => return bad("epsilon", r),
        };
        match Epsilon::parse(self.max_epsilon_per_run) {
            Ok(e) if e > total => return bad("max_epsilon_per_run", "exceeds dp.epsilon"),
            Ok(_) => {}
            Err(r) => return bad("max_epsilon_per_run", r),
        }
        if !(self.delta > 0.0 && self.delta <= MAX_DELTA) {
            return bad("delta", "must be above 0 and at most 0.001");
        }
        if !(1..=1000).contains(&self.max_groups_per_unit) {
            return bad("max_groups_per_unit", "must be between 1 and 1000");
        }
        if !(1..=1_000_000).contains(&self.max_rows_per_unit) {
            return bad("max_rows_per_unit", "must be between 1 and 1000000");
        }
        for (column, [low, high]) in &self.bounds {
            if !is_metric(column) {
                return Err((
                    format!("dp.bounds.{column}"),
                    "is not a metric column of the dataset".to_string(),
                ));
            }
            if !(low.is_finite() && high.is_finite() && low <= high) {
                return Err((
                    format!("dp.bounds.{column}"),
                    "must be [low, high] with finite low <= high".to_string(),
                ));
            }
        }
        Ok(())
    }
}

/// The noise a DP workload's release gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// Laplace noise (pure ε-DP for values; the threshold on group keys spends δ).
    Laplace,
    /// Gaussian noise ((ε, δ)-DP through zero-concentrated DP).
    Gaussian,
}

impl Mechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Laplace => "laplace",
            Mechanism::Gaussian => "gaussian",
        }
    }
}

/// A workload's `dp = { epsilon = .., mechanism = .. }`: its release is differentially
/// private, spending `epsilon` from every input's budget. For a SQL workload that is its
/// result; for a module workload, its metrics: exactly the metrics named in
/// `metric_bounds` are released, each clamped into its bounds, with noise.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadDp {
    pub epsilon: f64,
    pub mechanism: Mechanism,
    /// Module workloads: `[low, high]` per metric the module may release.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metric_bounds: BTreeMap<String, [f64; 2]>,
}

impl WorkloadDp {
    /// The ε the run spends (validated at workload parse).
    pub fn spend(&self) -> Epsilon {
        Epsilon::parse(self.epsilon).unwrap_or(Epsilon::ZERO)
    }

    /// Check the values for a SQL (`module = false`) or module workload; `Err((field,
    /// reason))`.
    pub(crate) fn validate(&self, module: bool) -> Result<(), (String, String)> {
        if let Err(r) = Epsilon::parse(self.epsilon) {
            return Err(("dp.epsilon".into(), r.into()));
        }
        match (module, self.metric_bounds.is_empty()) {
            (true, true) => {
                return Err((
                    "dp.metric_bounds".into(),
                    "a module workload under dp releases only the metrics named here, with their bounds: name at least one".into(),
                ));
            }
            (false, false) => {
                return Err((
                    "dp.metric_bounds".into(),
                    "applies only to module workloads (a SQL result's bounds are the contract's dp.bounds)".into(),
                ));
            }
            _ => {}
        }
        for (name, [low, high]) in &self.metric_bounds {
            if !(low.is_finite() && high.is_finite() && low <= high) {
                return Err((
                    format!("dp.metric_bounds.{name}"),
                    "must be [low, high] with finite low <= high".into(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn epsilon_is_exact_in_micro_units() {
        let tenth = Epsilon::parse(0.1).unwrap();
        let mut sum = Epsilon::ZERO;
        for _ in 0..10 {
            sum = sum.checked_add(tenth).unwrap();
        }
        assert_eq!(sum, Epsilon::parse(1.0).unwrap());
        assert_eq!(tenth.to_string(), "0.1");
        assert_eq!(Epsilon::parse(2.0).unwrap().to_string(), "2");
        assert_eq!(Epsilon::parse(0.000001).unwrap().micros(), 1);
    }

    #[test]
    fn epsilon_refuses_what_it_cannot_account_exactly() {
        assert_eq!(
            Epsilon::parse(0.0000001),
            Err("has more than six decimals (ε is accounted in units of 0.000001)")
        );
        assert_eq!(Epsilon::parse(0.0), Err("must be a number above 0"));
        assert_eq!(Epsilon::parse(f64::NAN), Err("must be a number above 0"));
        assert_eq!(Epsilon::parse(1000.0), Err("must be at most 100"));
    }
}
