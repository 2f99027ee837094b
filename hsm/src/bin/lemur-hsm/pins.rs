//! Getting PINs without putting them on a command line: a file, the systemd credential, or a
//! prompt without echo.

use lemur_hsm::{Error, Pin};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The systemd credential holding the user PIN (`LoadCredential=hsm-pin:...`).
fn credential() -> Option<PathBuf> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY")?;
    let path = PathBuf::from(dir).join("hsm-pin");
    path.exists().then_some(path)
}

fn prompt_error(what: &str) -> Error {
    Error::PinFile {
        path: PathBuf::from("(prompt)"),
        reason: format!(
            "no {what} file given and standard input is not a terminal: pass --pin-file (or --so-pin-file / --new-pin-file)"
        ),
    }
}

fn prompt(what: &str) -> Result<Pin, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(prompt_error(what));
    }
    let typed = Zeroizing::new(
        rpassword::prompt_password(format!("{what}: ")).map_err(|_| prompt_error(what))?,
    );
    Pin::new(typed).map_err(|reason| Error::PinFile {
        path: PathBuf::from("(prompt)"),
        reason: reason.to_owned(),
    })
}

/// The user PIN from `file`, the systemd credential, or a prompt.
pub fn user_pin(file: Option<&Path>, what: &str) -> Result<Pin, Error> {
    match file.map(Path::to_owned).or_else(credential) {
        Some(path) => Pin::from_file(&path),
        None => prompt(what),
    }
}

/// The user PIN if one is available without prompting (for `status`).
pub fn optional_user_pin(file: Option<&Path>) -> Result<Option<Pin>, Error> {
    match file.map(Path::to_owned).or_else(credential) {
        Some(path) => Pin::from_file(&path).map(Some),
        None if std::io::stdin().is_terminal() => prompt("User PIN").map(Some),
        None => Ok(None),
    }
}

/// A new PIN from `file`, or typed twice at a prompt.
pub fn new_pin(file: Option<&Path>, what: &str) -> Result<Pin, Error> {
    if let Some(path) = file {
        return Pin::from_file(path);
    }
    let first = prompt(what)?;
    let second = prompt(&format!("{what} (again)"))?;
    if first.expose() != second.expose() {
        return Err(Error::PinFile {
            path: PathBuf::from("(prompt)"),
            reason: "the two PINs differ".into(),
        });
    }
    Ok(first)
}
