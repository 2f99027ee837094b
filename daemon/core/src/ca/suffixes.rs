//! The public suffix list (Debian's `publicsuffix` package), for what the CA/Browser Forum asks
//! of names in publicly trusted certificates: a registered top-level domain, and no wildcard over
//! a public suffix (`*.com`, `*.co.uk`).

use crate::error::{Error, Result};
use publicsuffix::{List, Psl};
use std::path::Path;

/// Where Debian's `publicsuffix` package puts the list.
pub const DEBIAN_LIST: &str = "/usr/share/publicsuffix/public_suffix_list.dat";

/// The parsed list.
pub struct PublicSuffixes(List);

impl std::fmt::Debug for PublicSuffixes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicSuffixes")
    }
}

impl PublicSuffixes {
    /// Reads the list at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(Error::io(format!(
            "reading the public suffix list {}",
            path.display()
        )))?;
        Self::parse(&text).map_err(|reason| Error::Config {
            path: path.to_owned(),
            reason,
        })
    }

    /// Parses the list's text.
    pub fn parse(text: &str) -> std::result::Result<Self, String> {
        text.parse::<List>()
            .map(Self)
            .map_err(|e| format!("not a public suffix list: {e}"))
    }

    /// Why a publicly trusted certificate may not name `name` (lower-case, syntax checked), if it
    /// may not.
    pub fn refusal(&self, name: &str) -> Option<String> {
        let suffix = self.0.suffix(name.trim_start_matches("*.").as_bytes());
        let Some(suffix) = suffix.filter(|s| s.is_known()) else {
            return Some(format!(
                "{name:?} is not under a registered top-level domain, which a publicly trusted certificate may not name (CA/Browser Forum)"
            ));
        };
        if let Some(covered) = name.strip_prefix("*.")
            && suffix.as_bytes() == covered.as_bytes()
        {
            return Some(format!(
                "{name:?} is a wildcard over the public suffix {covered:?} (CA/Browser Forum)"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str =
        "// ===BEGIN ICANN DOMAINS===\ncom\nuk\nco.uk\n*.ck\n!www.ck\n// ===END ICANN DOMAINS===\n";

    #[test]
    fn names_need_a_registered_tld_and_wildcards_a_registrable_domain() {
        let list = PublicSuffixes::parse(LIST).unwrap();
        for allowed in [
            "example.com",
            "*.example.com",
            "shop.example.co.uk",
            "*.example.co.uk",
        ] {
            assert_eq!(list.refusal(allowed), None, "{allowed}");
        }
        for (refused, why) in [
            ("*.com", "wildcard"),
            ("*.co.uk", "wildcard"),
            ("host.internal", "registered"),
            ("printer.local", "registered"),
        ] {
            let reason = list.refusal(refused).unwrap_or_default();
            assert!(reason.contains(why), "{refused}: {reason}");
        }
    }

    /// `./dev test` installs Debian's `publicsuffix` package, as the appliance does.
    #[test]
    fn debians_list_loads() {
        let list = PublicSuffixes::load(Path::new(DEBIAN_LIST)).unwrap();
        assert!(list.refusal("*.co.uk").is_some());
        assert!(list.refusal("host.internal").is_some());
        assert_eq!(list.refusal("www.example.org"), None);
        // Internationalised rules are in Unicode in the list, names in certificates in ASCII.
        assert!(
            list.refusal("*.xn--55qx5d.hk").is_some(),
            "公司.hk is a suffix"
        );
        assert_eq!(list.refusal("example.xn--p1ai"), None, "рф is a TLD");
    }
}
