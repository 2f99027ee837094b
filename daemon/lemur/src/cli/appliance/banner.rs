//! The console banner, an agetty issue file (`/run/issue.d/50-lemur.issue`): where to reach the
//! appliance, the fingerprint to check its CA against before trusting it, and the admin's first
//! password while it still opens the account. The console is the one place that password is
//! shown: whoever reads it stands at the machine.
//!
//! The trust boundary. Provisioning runs as the daemon's user, who can be assumed compromised
//! if the daemon is; it knows the URL and the CA, and writes them as [`Facts`] into its state
//! directory, with a [`PASSWORD_CHANGED`] marker once the first password no longer opens the
//! admin account. `lemur appliance banner` runs as root, since agetty reads root's
//! `/run/issue.d`: it takes from that user's side only these two files, read without following
//! links (never a FIFO, a device or a second name of another file) and refused unless each value
//! matches a strict form (an `https://` URL of host-name characters, 32 hex pairs), and reads
//! the password itself by decrypting its credential, so the password is never in a file the
//! daemon's user can read. That user can at worst make the banner show a wrong URL or
//! fingerprint, or show the first password again (a password it held already).

use super::apply::issue_text;
use super::credstore::Credstore;
use super::upgrade::Slot;
use crate::cli::token::ADMIN_PASSWORD;
use lemur_core::app::DEFAULT_ADMIN;
use lemur_core::files::{ensure_private_dir, read_untrusted, replace_if_changed};
use lemur_core::{Error, Result};
use std::path::Path;
use zeroize::Zeroizing;

/// The facts file in the state directory.
pub const FACTS: &str = "banner-facts";
/// The marker provisioning writes in the state directory once the admin's first password no
/// longer opens the account; it is never removed, so the password is never shown again.
pub const PASSWORD_CHANGED: &str = "first-password-changed";

/// The longest facts file (a URL and a fingerprint).
const MAX_FACTS: u64 = 1024;
/// The longest URL shown.
const MAX_URL: usize = 300;

/// What the daemon's side knows for the banner: the web interface's URL and the appliance CA's
/// SHA-256 fingerprint, each checked against its strict form.
#[derive(Debug, PartialEq, Eq)]
pub struct Facts {
    url: String,
    fingerprint: String,
}

impl Facts {
    /// Facts whose values have their strict forms.
    pub fn new(url: String, fingerprint: String) -> std::result::Result<Self, String> {
        let host = url
            .strip_prefix("https://")
            .and_then(|rest| rest.strip_suffix('/'))
            .ok_or("the URL is not https://HOST/")?;
        let host_characters = |c: char| c.is_ascii_alphanumeric() || ".-:[]".contains(c);
        if host.is_empty() || url.len() > MAX_URL || !host.chars().all(host_characters) {
            return Err("the URL's host holds more than letters, digits and .-:[]".into());
        }
        let pairs: Vec<&str> = fingerprint.split(':').collect();
        let hex_pair = |pair: &&str| {
            pair.len() == 2
                && pair
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        };
        if pairs.len() != 32 || !pairs.iter().all(hex_pair) {
            return Err("the fingerprint is not 32 upper-case hex pairs joined by colons".into());
        }
        Ok(Self { url, fingerprint })
    }

    /// The facts as the daemon's side writes them.
    fn text(&self) -> String {
        format!("url={}\nfingerprint={}\n", self.url, self.fingerprint)
    }

    /// Facts from a file's bytes, refused unless every line is as [`Facts::text`] writes it.
    /// The reason never quotes the file: it may hold anything.
    fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "it is not UTF-8 text")?;
        let mut lines = text.lines();
        let (Some(url), Some(fingerprint), None) = (
            lines.next().and_then(|line| line.strip_prefix("url=")),
            lines
                .next()
                .and_then(|line| line.strip_prefix("fingerprint=")),
            lines.next(),
        ) else {
            return Err("it is not a url= line and a fingerprint= line".into());
        };
        Self::new(url.to_owned(), fingerprint.to_owned())
    }

    /// Writes the facts into `state_dir` (the daemon's side) when they changed.
    pub fn write(&self, state_dir: &Path) -> Result<()> {
        let path = state_dir.join(FACTS);
        if replace_if_changed(&path, self.text().as_bytes(), 0o600)? {
            println!("wrote {}", path.display());
        }
        Ok(())
    }
}

/// `lemur appliance banner`, as root: the banner from the daemon's side's facts in `state_dir`
/// and the admin-password credential in `credstore`, written to `issue_file`. What cannot be
/// shown is replaced by where to look, and then the command fails (after writing the banner).
pub fn run(
    state_dir: &Path,
    credstore: &Path,
    issue_file: &Path,
    slot_file: Option<&Path>,
) -> Result<()> {
    let facts_file = state_dir.join(FACTS);
    let facts = read_untrusted(&facts_file, MAX_FACTS).and_then(|bytes| {
        Facts::parse(&bytes).map_err(|reason| {
            Error::invalid(
                &facts_file.display().to_string(),
                format!("{reason}; `lemur appliance provision` writes it again at the next boot"),
            )
        })
    });
    let password = match (&facts, first_password_changed(state_dir)) {
        (Ok(_), false) => Some(
            Credstore::at(credstore)
                .decrypt(ADMIN_PASSWORD.name)
                .and_then(|clear| password_text(&clear)),
        ),
        _ => None,
    };
    // Which release and slot run, for whoever checks an upgrade at the console, and for the
    // daemon's upgrade status.
    let slot = std::fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|cmdline| Slot::running(&cmdline).ok());
    if let (Some(slot), Some(file)) = (slot, slot_file) {
        replace_if_changed(file, format!("{slot}\n").as_bytes(), 0o644)?;
    }
    let text = banner(
        facts.as_ref().ok(),
        password.as_ref().map(|p| p.as_ref().ok()),
        slot,
    );
    if let Some(dir) = issue_file.parent() {
        ensure_private_dir(dir)?;
    }
    replace_if_changed(issue_file, text.as_bytes(), 0o600)?;
    facts?;
    password.transpose()?;
    Ok(())
}

/// Whether the marker is there. Anything at its name counts (it is never followed), as does
/// an error looking: a wrong "yes" hides the password, a wrong "no" would show it.
fn first_password_changed(state_dir: &Path) -> bool {
    match std::fs::symlink_metadata(state_dir.join(PASSWORD_CHANGED)) {
        Ok(_) => true,
        Err(error) => error.kind() != std::io::ErrorKind::NotFound,
    }
}

/// The decrypted password as text to show: printable ASCII, as it was generated.
fn password_text(clear: &[u8]) -> Result<Zeroizing<String>> {
    let text = std::str::from_utf8(clear)
        .ok()
        .map(|text| text.trim_end_matches('\n'))
        .filter(|text| !text.is_empty() && text.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| {
            Error::invalid(
                ADMIN_PASSWORD.name,
                "the credential is not the printable password provisioning made: reset the admin's password with `lemur reset_password lemur`",
            )
        })?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// The banner's text; `password` is `None` once the first password is changed (or when the
/// facts could not be read), `Some(None)` when it could not be read. agetty expands backslash
/// escapes in issue files: `\4` is this machine's IPv4 address.
fn banner(
    facts: Option<&Facts>,
    password: Option<Option<&Zeroizing<String>>>,
    slot: Option<Slot>,
) -> Zeroizing<String> {
    let release = match slot {
        Some(slot) => format!("{}, root slot {slot}", env!("CARGO_PKG_VERSION")),
        None => env!("CARGO_PKG_VERSION").to_owned(),
    };
    let Some(facts) = facts else {
        return Zeroizing::new(format!(
            "\nLemur-HSM appliance {release}\n  Provisioning has not finished, or what it wrote cannot be shown:\n  see journalctl -b -u lemur-provision\n\n"
        ));
    };
    let password = match password {
        Some(Some(password)) => Zeroizing::new(format!(
            "{}  (shown until it is changed)",
            Zeroizing::new(issue_text(password)).as_str()
        )),
        Some(None) => {
            Zeroizing::new("cannot be shown: see journalctl -b -u lemur-provision".to_owned())
        }
        None => Zeroizing::new("changed since the first boot; not shown".to_owned()),
    };
    Zeroizing::new(format!(
        "\nLemur-HSM appliance {release}\n  \
         Web interface   {url}   (this machine's address: \\4)\n  \
         Appliance CA    SHA-256 {fingerprint}\n                  \
         (check it against the CA certificate your browser shows before you trust it)\n  \
         Administrator   {DEFAULT_ADMIN}\n  \
         Password        {password}\n\n",
        url = facts.url,
        fingerprint = facts.fingerprint,
        password = password.as_str(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINGERPRINT: &str = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";

    #[test]
    fn facts_read_back_as_written() {
        let facts = Facts::new("https://lemur.example.test/".into(), FINGERPRINT.into()).unwrap();
        assert_eq!(Facts::parse(facts.text().as_bytes()), Ok(facts));
    }

    #[test]
    fn facts_out_of_their_strict_form_are_refused() {
        let refused = |text: String| Facts::parse(text.as_bytes()).unwrap_err();
        let good_url = "url=https://lemur.example.test/";
        let good_fingerprint = format!("fingerprint={FINGERPRINT}");
        for bad_url in [
            "url=http://lemur.example.test/",
            "url=https://lemur.example.test/\\e[2J",
            "url=https://lemur example.test/",
            "url=https://lemur.example.test/login",
            "url=https:///",
        ] {
            refused(format!("{bad_url}\n{good_fingerprint}\n"));
        }
        for bad_fingerprint in [
            &FINGERPRINT[3..],
            &FINGERPRINT.to_lowercase(),
            &FINGERPRINT.replace("FF", "FG"),
        ] {
            refused(format!("{good_url}\nfingerprint={bad_fingerprint}\n"));
        }
        refused(format!("{good_url}\n{good_fingerprint}\npassword=x\n"));
        refused(format!("{good_fingerprint}\n{good_url}\n"));
        refused(format!(
            "url=https://{}.test/\n{good_fingerprint}\n",
            "a".repeat(MAX_URL)
        ));
    }

    #[test]
    fn the_banner_shows_the_password_only_while_it_is_the_first() {
        let facts = Facts::new("https://lemur.example.test/".into(), FINGERPRINT.into()).unwrap();
        let password = Zeroizing::new("0123abcd".to_owned());
        let shown = banner(
            Some(&facts),
            Some(Some(&password)),
            Slot::running("lemur.slot=b").ok(),
        );
        assert!(shown.contains(", root slot b\n"), "{}", shown.as_str());
        assert!(shown.contains("Password        0123abcd  (shown until it is changed)"));
        assert!(shown.contains(&format!("SHA-256 {FINGERPRINT}")));
        let changed = banner(Some(&facts), None, None);
        assert!(!changed.contains("0123abcd") && changed.contains("not shown"));
        let unknown = banner(None, None, None);
        assert!(unknown.contains("journalctl -b -u lemur-provision"));
    }
}
