//! `lemur check entropy`: the start-up entropy self-test on its own, for the unit that gates the
//! daemon (`systemd/lemur-entropy.service`) and for an operator who wants to see it.

use lemur_core::config::Config;
use lemur_core::{Error, Result};
use std::path::Path;

/// Runs the SP 800-90B health tests on every random source the configuration has, prints the
/// report, and fails when any source fails.
pub async fn entropy(config_path: &Path) -> Result<()> {
    let config = Config::load(config_path)?;
    crate::open::module_environment(&config)?;
    let report = tokio::task::spawn_blocking(move || -> Result<_> {
        let (_keys, monitor) = crate::open::hsm_and_entropy(&config)?;
        Ok(monitor.check())
    })
    .await
    .map_err(Error::task("the entropy check"))??;
    println!("{report}");
    match report.reason {
        None => Ok(()),
        Some(reason) => Err(lemur_entropy::Error::Unhealthy { reason }.into()),
    }
}
