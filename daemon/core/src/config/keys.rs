//! `[keys]`: keys generated ahead of demand, in memory and stocked in the database.

use serde::Deserialize;

/// `[keys]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// How many keys of each type (Lemur's key type names: `RSA2048`...) the daemon keeps
    /// generated in the HSM ahead of demand, for certificates issued without a CSR. RSA keys
    /// take the token a tenth of a second and more each; a ready one is handed out at once.
    #[serde(default = "default_ready_keys")]
    pub ready: std::collections::BTreeMap<String, usize>,
    /// How many more of each type are kept generated ahead, sealed under the KEK in the
    /// database: they outlast a restart, serve bursts far larger than `ready`, and are shared
    /// by every daemon on the database. Made one at a time on a thread of the lowest CPU
    /// priority, so only idle CPU time goes into them. None unless configured (a configuration
    /// written before this key existed keeps its behaviour).
    #[serde(default)]
    pub stock: std::collections::BTreeMap<String, usize>,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            ready: default_ready_keys(),
            stock: std::collections::BTreeMap::new(),
        }
    }
}

impl KeysConfig {
    /// The `ready` counts by algorithm, those above zero.
    pub fn ready_targets(&self) -> Vec<(lemur_hsm::KeyAlgorithm, usize)> {
        targets(&self.ready)
    }

    /// The `stock` counts by algorithm, those above zero.
    pub fn stock_targets(&self) -> Vec<(lemur_hsm::KeyAlgorithm, usize)> {
        targets(&self.stock)
    }

    /// Refuses counts that are not key types or too large, and a stock the pool would not use.
    pub(super) fn check(&self) -> std::result::Result<(), String> {
        Self::check_counts(&self.ready, "ready", 10_000)?;
        Self::check_counts(&self.stock, "stock", 1_000_000)?;
        self.check_stock_feeds_the_pool()
    }

    /// Refuses a stock of a key type the memory pool does not keep: only the pool takes from
    /// the stock, so it would be made and never used.
    fn check_stock_feeds_the_pool(&self) -> std::result::Result<(), String> {
        let ready = self.ready_targets();
        match self
            .stock_targets()
            .into_iter()
            .find(|(algorithm, _)| !ready.iter().any(|(a, _)| a == algorithm))
        {
            Some((algorithm, _)) => {
                let name = algorithm.lemur_name();
                Err(format!(
                    "keys.stock.{name}: the stock only refills keys.ready, which keeps no {name} keys; add {name} = 32 to keys.ready, or remove it from keys.stock"
                ))
            }
            None => Ok(()),
        }
    }

    /// Refuses a count that is not a key type or is too large; `table` and `limit` name them.
    fn check_counts(
        counts: &std::collections::BTreeMap<String, usize>,
        table: &str,
        limit: usize,
    ) -> std::result::Result<(), String> {
        for (key_type, count) in counts {
            if key_type.parse::<lemur_hsm::KeyAlgorithm>().is_err() {
                return Err(format!(
                    "keys.{table}: {key_type:?} is not a key type; use ECCPRIME256V1, ECCSECP384R1, RSA2048, RSA3072 or RSA4096"
                ));
            }
            if *count > limit {
                return Err(format!("keys.{table}.{key_type}: at most {limit} keys"));
            }
        }
        Ok(())
    }
}

/// Counts by key type name as counts by algorithm (names were checked at load).
fn targets(
    counts: &std::collections::BTreeMap<String, usize>,
) -> Vec<(lemur_hsm::KeyAlgorithm, usize)> {
    counts
        .iter()
        .filter_map(|(key_type, count)| Some((key_type.parse().ok()?, *count)))
        .filter(|(_, count)| *count > 0)
        .collect()
}

fn default_ready_keys() -> std::collections::BTreeMap<String, usize> {
    [("RSA2048".to_owned(), 32)].into_iter().collect()
}
