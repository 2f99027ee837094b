//! A configuration written by an earlier release gains what this release's provisioning writes.
//!
//! Provisioning writes `lemur.toml` once, at the first boot; an upgrade keeps the data partition
//! and so that file. A key a later release added (root's backup service, the key stock) would
//! then never reach an upgraded appliance. So each boot adds those the file lacks, once each:
//! the names added are recorded beside the file (`config-additions`), so a key an operator
//! removes afterwards stays removed, and a value an operator set, even an empty one, is never
//! touched. The file is edited in place (comments and order kept) with `toml_edit`.
//!
//! Not while a release is on trial: the release it would fall back to may not know the keys
//! (its configuration refuses unknown ones), so the additions wait for a boot after the trial.

use lemur_core::config::BackupsConfig;
use lemur_core::files::replace_private;
use lemur_core::{Error, Result};
use std::collections::BTreeSet;
use std::path::Path;
use toml_edit::{DocumentMut, InlineTable, Item, Table, value};

/// Where the names of the additions made are recorded, in the state directory.
const RECORD: &str = "config-additions";

/// What this release's appliance configuration has that an earlier one may lack.
pub struct Additions<'a> {
    /// `[backups]`.
    pub backups: &'a BackupsConfig,
    /// `keys.stock` of RSA-2048 keys.
    pub stocked_rsa_keys: usize,
}

impl Additions<'_> {
    /// Every addition, by the name it is recorded under.
    pub const NAMES: [&'static str; 2] = ["keys.stock", "backups"];

    /// `text` with the additions not `recorded` and absent from it made, and their names;
    /// `None` when none is to be made.
    pub fn apply(
        &self,
        text: &str,
        recorded: &BTreeSet<String>,
    ) -> Result<Option<(String, Vec<&'static str>)>> {
        let mut document: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
            Error::invalid("lemur.toml", e.message().to_owned())
        })?;
        let wanted = |name: &str| !recorded.contains(name);
        let mut added = Vec::new();
        if wanted("keys.stock") && document.get("keys").and_then(|k| k.get("stock")).is_none() {
            let mut stock = InlineTable::new();
            stock.insert(
                "RSA2048",
                i64::try_from(self.stocked_rsa_keys)
                    .unwrap_or(i64::MAX)
                    .into(),
            );
            if document.get("keys").is_none() {
                document.insert("keys", Item::Table(Table::new()));
            }
            document["keys"]["stock"] = value(stock);
            added.push("keys.stock");
        }
        if wanted("backups") && document.get("backups").is_none() {
            let mut backups = Table::new();
            for (key, path) in [
                ("socket", &self.backups.socket),
                ("restore_socket", &self.backups.restore_socket),
                ("restore_status", &self.backups.restore_status),
            ] {
                backups.insert(key, value(path.to_string_lossy().as_ref()));
            }
            document.insert("backups", Item::Table(backups));
            added.push("backups");
        }
        let text = document.to_string();
        // What is written must read back: a document that would not is never written.
        toml::from_str::<toml::Table>(&text).map_err(|e| {
            Error::invalid(
                "lemur.toml",
                format!("an addition would break it: {}", e.message()),
            )
        })?;
        Ok((!added.is_empty()).then_some((text, added)))
    }
}

/// The additions recorded in `state_dir`.
pub fn recorded(state_dir: &Path) -> Result<BTreeSet<String>> {
    let path = state_dir.join(RECORD);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(error) => Err(Error::io(format!("reading {}", path.display()))(error)),
    }
}

/// Records every addition as made: the configuration has them now, or had them and an operator
/// chose otherwise.
pub fn record_all(state_dir: &Path) -> Result<()> {
    let text: String = Additions::NAMES
        .iter()
        .map(|name| format!("{name}\n"))
        .collect();
    replace_private(&state_dir.join(RECORD), text.as_bytes(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the appliance adds, as provisioning has it.
    fn additions() -> Additions<'static> {
        static BACKUPS: std::sync::LazyLock<BackupsConfig> =
            std::sync::LazyLock::new(BackupsConfig::appliance);
        Additions {
            backups: &BACKUPS,
            stocked_rsa_keys: 1024,
        }
    }

    fn parsed(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn an_earlier_configuration_gains_the_keys_it_lacks_and_keeps_the_rest() {
        let earlier = "version = 1\n\n[keys]\n# Kept ready.\nready = { RSA2048 = 32 }\n\n[frontend] # the front end\nauthority = \"appliance\"\n";
        let (updated, added) = additions().apply(earlier, &none()).unwrap().unwrap();
        assert_eq!(added, ["keys.stock", "backups"]);
        let table = parsed(&updated);
        assert_eq!(table["keys"]["stock"]["RSA2048"].as_integer(), Some(1024));
        assert_eq!(table["keys"]["ready"]["RSA2048"].as_integer(), Some(32));
        assert_eq!(table["frontend"]["authority"].as_str(), Some("appliance"));
        assert_eq!(
            table["backups"]["socket"].as_str(),
            Some("/run/lemur-backup.sock")
        );
        assert_eq!(
            table["backups"]["restore_socket"].as_str(),
            Some("/run/lemur-restore.sock")
        );
        assert!(
            updated.contains("# Kept ready.\nready = { RSA2048 = 32 }\n"),
            "{updated}"
        );
        assert!(
            updated.contains("[frontend] # the front end\n"),
            "{updated}"
        );
        assert!(
            additions().apply(&updated, &none()).unwrap().is_none(),
            "a second pass adds nothing"
        );
    }

    #[test]
    fn what_an_operator_set_or_removed_stays() {
        let chosen = "version = 1\n[keys]\nstock = {}\n[backups]\nsocket = \"/elsewhere.sock\"\n";
        assert!(additions().apply(chosen, &none()).unwrap().is_none());
        let recorded: BTreeSet<String> = Additions::NAMES.iter().map(|n| (*n).to_owned()).collect();
        assert!(
            additions()
                .apply("version = 1\n", &recorded)
                .unwrap()
                .is_none(),
            "removed after being added"
        );
    }

    #[test]
    fn keys_written_in_any_toml_form_are_found_or_joined() {
        for form in [
            "version = 1\nkeys = { ready = { RSA2048 = 2 } }\n",
            "version = 1\nkeys.ready = { RSA2048 = 2 }\n",
            "version = 1\n[ keys ]\nready = { RSA2048 = 2 }\n",
            "version = 1\n",
        ] {
            let (updated, _) = additions().apply(form, &none()).unwrap().unwrap();
            let table = parsed(&updated);
            assert_eq!(
                table["keys"]["stock"]["RSA2048"].as_integer(),
                Some(1024),
                "{form}"
            );
            if form.contains("ready") {
                assert_eq!(
                    table["keys"]["ready"]["RSA2048"].as_integer(),
                    Some(2),
                    "{form}"
                );
            }
        }
    }

    #[test]
    fn a_configuration_that_does_not_parse_is_named() {
        let error = additions()
            .apply("version = ", &none())
            .unwrap_err()
            .to_string();
        assert!(error.contains("lemur.toml"), "{error}");
    }
}
