//! A configuration written by an earlier release gains what this release's provisioning writes.
//!
//! Provisioning writes `lemur.toml` once, at the first boot; an upgrade keeps the data partition
//! and so that file. A key a later release added (root's backup service, the key stock) would
//! then never reach an upgraded appliance. Each boot therefore adds those the file lacks. Only
//! absent keys are added: a new configuration writes every one of them (`stock = {}` when
//! there is none), so an absent key was never chosen, while a value an operator set, even an
//! empty one, is theirs and stays.

use lemur_core::{Error, Result};

/// What this release's appliance configuration has that an earlier one may lack.
pub struct Additions<'a> {
    /// `[backups] socket`.
    pub backup_socket: &'a str,
    /// `keys.stock` of RSA-2048 keys.
    pub stocked_rsa_keys: usize,
}

impl Additions<'_> {
    /// `text` with what it lacks added, and their names; `None` when it lacks nothing.
    pub fn apply(&self, text: &str) -> Result<Option<(String, Vec<&'static str>)>> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| Error::invalid("lemur.toml", e.message().to_owned()))?;
        let mut text = text.to_owned();
        let mut added = Vec::new();
        let keys = table.get("keys").and_then(toml::Value::as_table);
        if keys.is_none_or(|keys| !keys.contains_key("stock")) {
            let line = format!(
                "# Added by an upgrade: RSA-2048 keys generated ahead, sealed in the database.\nstock = {{ RSA2048 = {} }}\n",
                self.stocked_rsa_keys
            );
            text = insert_into_table(&text, "keys", &line);
            added.push("keys.stock");
        }
        if !table.contains_key("backups") {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!(
                "\n# Added by an upgrade: root's backup service, for backups through the API.\n[backups]\nsocket = {}\n",
                toml::Value::from(self.backup_socket)
            ));
            added.push("[backups]");
        }
        Ok((!added.is_empty()).then_some((text, added)))
    }
}

/// `text` with `lines` placed right under the `[name]` header, or in a new table at the end.
fn insert_into_table(text: &str, name: &str, lines: &str) -> String {
    let header = format!("[{name}]");
    let mut out = String::with_capacity(text.len() + lines.len() + header.len() + 2);
    let mut placed = false;
    for line in text.split_inclusive('\n') {
        out.push_str(line);
        if !placed && line.split('#').next().is_some_and(|l| l.trim() == header) {
            if !line.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(lines);
            placed = true;
        }
    }
    if !placed {
        if !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("\n{header}\n{lines}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDITIONS: Additions<'static> = Additions {
        backup_socket: "/run/lemur-backup.sock",
        stocked_rsa_keys: 1024,
    };

    fn parsed(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn an_earlier_configuration_gains_the_keys_it_lacks_once() {
        let earlier = "version = 1\n\n[keys]\nready = { RSA2048 = 32 }\n\n[frontend] # the front end\nauthority = \"appliance\"\n";
        let (updated, added) = ADDITIONS.apply(earlier).unwrap().unwrap();
        assert_eq!(added, ["keys.stock", "[backups]"]);
        let table = parsed(&updated);
        assert_eq!(table["keys"]["stock"]["RSA2048"].as_integer(), Some(1024));
        assert_eq!(table["keys"]["ready"]["RSA2048"].as_integer(), Some(32));
        assert_eq!(table["frontend"]["authority"].as_str(), Some("appliance"));
        assert_eq!(
            table["backups"]["socket"].as_str(),
            Some("/run/lemur-backup.sock")
        );
        // The stock goes under its table's header; the rest is as it was.
        assert!(updated.starts_with("version = 1\n\n[keys]\n# Added by an upgrade"));
        assert!(updated.contains("ready = { RSA2048 = 32 }\n\n[frontend] # the front end\n"));
        assert!(
            ADDITIONS.apply(&updated).unwrap().is_none(),
            "a second pass adds nothing"
        );
    }

    #[test]
    fn what_an_operator_set_stays_even_when_empty() {
        let chosen = "version = 1\n[keys]\nstock = {}\n[backups]\nsocket = \"/elsewhere.sock\"\n";
        assert!(ADDITIONS.apply(chosen).unwrap().is_none());
    }

    #[test]
    fn a_configuration_without_a_keys_table_gets_one() {
        let (updated, added) = ADDITIONS
            .apply("version = 1\n[backups]\nsocket = \"/x\"")
            .unwrap()
            .unwrap();
        assert_eq!(added, ["keys.stock"]);
        assert_eq!(
            parsed(&updated)["keys"]["stock"]["RSA2048"].as_integer(),
            Some(1024)
        );
        assert_eq!(parsed(&updated)["backups"]["socket"].as_str(), Some("/x"));
    }

    #[test]
    fn a_configuration_that_does_not_parse_is_named() {
        let error = ADDITIONS.apply("version = ").unwrap_err().to_string();
        assert!(error.contains("lemur.toml"), "{error}");
    }
}
