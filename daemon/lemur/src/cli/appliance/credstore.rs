//! `lemur appliance credentials`, root's part of provisioning: the appliance's generated secrets
//! (the token's PINs, the login token secret, the admin's first password) as systemd
//! credentials (`systemd-creds encrypt`), encrypted with the machine's credential key (the TPM's
//! and the host key on `/var`, or the host key alone) and kept in a root-only directory. systemd
//! decrypts them for the units that load them (`LoadCredentialEncrypted=`): provisioning and the
//! daemon, which both run as the daemon's user. No clear copy ever reaches a disk, and a secret
//! never appears in a command line: `systemd-creds` reads and writes it through pipes.
//!
//! This runs as root, so it reads nothing the daemon's user can write: its arguments come from
//! the unit file, and of the daemon's state it only asks whether the token directory holds
//! anything (by name, without reading it), so as never to make a PIN for a token that already
//! has one.
//!
//! With a hardware HSM (the seed's `[hsm]`), the user PIN is not made but given: the seed's
//! `[hsm] pin`, which its owner set with the vendor's tools, becomes the credential and is then
//! removed from the seed, so that it stays in clear on the ESP only until the first boot (a new
//! PIN written there later replaces the credential in the same way). The SO PIN is made all
//! the same, so that every appliance has the same credentials, and never used: the token's
//! own stays with its owner.

use super::seed::{self, ExternalHsm, Hsm};
use crate::cli::token::{ADMIN_PASSWORD, Generated, HSM_PIN, HSM_SO_PIN, TOKEN_SECRET};
use lemur_core::clock;
use lemur_core::files::{ensure_private_dir, replace_private};
use lemur_core::{Error, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use zeroize::Zeroizing;

/// systemd's host key for credentials, which the encrypted files are useless without.
const HOST_KEY: &str = "/var/lib/systemd/credential.secret";

/// The most `systemd-creds` prints here: a secret of a few dozen bytes, or its encrypted form.
const MAX_OUTPUT: usize = 64 * 1024;

/// The credentials the appliance's units load, and whether each is tied to the token: a PIN
/// made again would not open the token made with the old one. The login token secret and the
/// admin's first password may be made again (sessions end; the console stops showing a password
/// the admin account does not have).
const CREDENTIALS: [(Generated, bool); 4] = [
    (HSM_PIN, true),
    (HSM_SO_PIN, true),
    (TOKEN_SECRET, false),
    (ADMIN_PASSWORD, false),
];

/// `lemur appliance credentials`: each credential checked (it decrypts) or made when missing,
/// the user PIN of a hardware HSM taken from the seed at `seed`; every problem reported before
/// it fails.
pub fn run(credstore: &Path, token_dir: &Path, seed: &Path) -> Result<()> {
    let store = Credstore::open(credstore)?;
    let token_may_exist = token_may_exist(token_dir)?;
    let hsm = match seed::hsm_of(seed, clock::system().unix())? {
        Hsm::BuiltIn => Hsm::BuiltIn,
        // Provisioning read the seed's HSM once, and chose SoftHSM2: a later [hsm] must not
        // replace the PIN of the token that holds the keys.
        _ if token_may_exist => {
            println!(
                "the seed's [hsm] is not used: this appliance keeps its keys in the SoftHSM2 token in {}",
                token_dir.display()
            );
            Hsm::BuiltIn
        }
        other => other,
    };
    host_key()?;
    // Each is a systemd-creds run of its own, on the boot's critical path: all at once.
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let (store, hsm) = (&store, &hsm);
        let checks: Vec<_> = CREDENTIALS
            .iter()
            .map(|(secret, tied_to_token)| {
                scope.spawn(move || match hsm {
                    Hsm::External(external) if secret.name == HSM_PIN.name => {
                        store.ensure_given(external, seed)
                    }
                    Hsm::Unusable if secret.name == HSM_PIN.name => store.check_held(secret, seed),
                    _ => store.ensure(secret, *tied_to_token && token_may_exist, token_dir),
                })
            })
            .collect();
        checks
            .into_iter()
            .map(|check| {
                check.join().unwrap_or_else(|_| {
                    Err(Error::io("checking a credential")(std::io::Error::other(
                        "the check panicked",
                    )))
                })
            })
            .collect()
    });
    let mut failed = 0;
    for error in results.into_iter().filter_map(Result::err) {
        eprintln!("lemur: {error}");
        failed += 1;
    }
    if let (0, Hsm::External(ExternalHsm { pin: Some(_), .. })) = (failed, &hsm) {
        seed::remove_pin(seed)?;
        println!(
            "took the HSM user PIN into the credential {} and removed it from {}",
            HSM_PIN.name,
            seed.display()
        );
    }
    match failed {
        0 => Ok(()),
        failed => Err(Error::io(format!(
            "checking the credentials in {}",
            credstore.display()
        ))(std::io::Error::other(format!(
            "{failed} credential(s) unusable (each is above)"
        )))),
    }
}

/// systemd's host key, made once before the credentials are checked at once: several
/// systemd-creds making it together must not each encrypt under a key of its own.
fn host_key() -> Result<()> {
    let key = std::env::var_os("SYSTEMD_CREDENTIAL_SECRET")
        .map_or_else(|| PathBuf::from(HOST_KEY), PathBuf::from);
    if key.exists() {
        return Ok(());
    }
    systemd_creds(&["setup"], &[])?.map(drop).map_err(|status| {
        Error::io(format!("making {}", key.display()))(std::io::Error::other(format!(
            "systemd-creds setup refused ({status}; its complaint is above): check that {} can be written",
            key.display()
        )))
    })
}

/// Whether the token directory holds anything. Only its entries' names are looked at, never
/// their content; anything there but an empty directory counts as a token, since a wrong "yes"
/// only stops a PIN from being made, and a wrong "no" loses the token.
fn token_may_exist(dir: &Path) -> Result<bool> {
    let context = || format!("looking for an HSM token in {}", dir.display());
    match std::fs::symlink_metadata(dir) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(Error::io(context())(error)),
        Ok(found) if found.is_dir() => Ok(std::fs::read_dir(dir)
            .map_err(Error::io(context()))?
            .next()
            .is_some()),
        Ok(_) => Ok(true),
    }
}

/// The credential store directory (`/var/lib/credstore.encrypted` on the appliance, which
/// `/etc/credstore.encrypted` links to).
pub struct Credstore {
    dir: PathBuf,
}

impl Credstore {
    /// The store in `dir`, created (0700) when missing.
    fn open(dir: &Path) -> Result<Self> {
        ensure_private_dir(dir)?;
        Ok(Self::at(dir))
    }

    /// The store in `dir`, to read.
    pub fn at(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    /// The file of the credential `name`: `lemur.NAME`, the name the units load.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("lemur.{name}"))
    }

    /// Checks that `secret` decrypts, or makes it when it is missing, unless `tied_to_token`
    /// (the token in `token_dir` may exist, and was made with the lost one).
    fn ensure(&self, secret: &Generated, tied_to_token: bool, token_dir: &Path) -> Result<()> {
        let file = self.path(secret.name);
        if file.exists() {
            return self.decrypt(secret.name).map(drop);
        }
        if tied_to_token {
            return Err(Error::io(format!("reading {}", file.display()))(
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "missing, but the HSM token in {} may exist, and a new {} would not open it. {}; or, to start afresh and lose every key in the token, remove {}",
                        token_dir.display(),
                        secret.name,
                        self.restore_hint(),
                        token_dir.display(),
                    ),
                ),
            ));
        }
        let value = secret.generate()?;
        let sealed = encrypt(secret.name, value.as_bytes())?;
        replace_private(&file, &sealed, None)?;
        println!("wrote the encrypted credential {}", file.display());
        Ok(())
    }

    /// The user PIN of the hardware HSM `hsm`: the seed's, written when the credential is
    /// missing or holds another; else the credential, which must decrypt.
    fn ensure_given(&self, hsm: &ExternalHsm, seed: &Path) -> Result<()> {
        let name = HSM_PIN.name;
        let file = self.path(name);
        let Some(given) = &hsm.pin else {
            if file.exists() {
                return self.decrypt(name).map(drop);
            }
            return Err(Error::invalid(
                "hsm.pin",
                format!(
                    "is missing from {}, and the appliance has no PIN for the token {:?} yet: write the token's user PIN there (it is taken into an encrypted credential and removed from the file at the next boot)",
                    seed.display(),
                    hsm.token
                ),
            ));
        };
        let held = if file.exists() {
            Some(self.decrypt(name)?)
        } else {
            None
        };
        if held.as_deref().map(Vec::as_slice) == Some(given.0.as_bytes()) {
            return Ok(());
        }
        replace_private(&file, &encrypt(name, given.0.as_bytes())?, None)?;
        println!(
            "wrote the encrypted credential {} from the seed",
            file.display()
        );
        Ok(())
    }

    /// `secret`, which must be there already and decrypt, while the seed at `seed` does not say
    /// rightly which HSM it is for: a PIN is neither taken nor made then (an appliance already
    /// provisioned goes on with the one it has).
    fn check_held(&self, secret: &Generated, seed: &Path) -> Result<()> {
        if self.path(secret.name).exists() {
            return self.decrypt(secret.name).map(drop);
        }
        Err(Error::invalid(
            "hsm",
            format!(
                "{} does not say rightly which HSM to use (the console shows what is wrong): no PIN is taken or made until it does",
                seed.display()
            ),
        ))
    }

    /// The credential `name`, decrypted, or what to do when it does not decrypt.
    pub fn decrypt(&self, name: &str) -> Result<Zeroizing<Vec<u8>>> {
        let file = self.path(name);
        let name_option = format!("--name={name}");
        let path = file.to_string_lossy();
        systemd_creds(&["decrypt", &name_option, &path, "-"], &[])?.map_err(|status| {
            Error::io(format!("decrypting {}", file.display()))(std::io::Error::other(format!(
                "systemd-creds refused ({status}; its complaint is above): this machine's credential key does not open it. {}",
                self.restore_hint()
            )))
        })
    }

    /// Every credential of the appliance that is in the store, by name, decrypted (a backup).
    pub fn decrypt_all(&self) -> Result<Vec<(String, Zeroizing<Vec<u8>>)>> {
        CREDENTIALS
            .iter()
            .filter(|(secret, _)| self.path(secret.name).exists())
            .map(|(secret, _)| Ok((secret.name.to_owned(), self.decrypt(secret.name)?)))
            .collect()
    }

    /// Refuses a backup's credentials unless they are exactly the appliance's, every one of
    /// which its units load: checked before a restore replaces anything.
    pub fn check_complete(names: &[String]) -> Result<()> {
        let unknown: Vec<&String> = names
            .iter()
            .filter(|name| !CREDENTIALS.iter().any(|(secret, _)| secret.name == *name))
            .collect();
        let missing: Vec<&str> = CREDENTIALS
            .iter()
            .map(|(secret, _)| secret.name)
            .filter(|name| !names.iter().any(|held| held == name))
            .collect();
        if unknown.is_empty() && missing.is_empty() {
            return Ok(());
        }
        Err(Error::invalid(
            "backup",
            format!(
                "it holds the credentials {names:?}; an appliance's backup holds exactly {:?} (missing {missing:?}, unknown {unknown:?}): restore a backup lemur appliance backup made",
                CREDENTIALS.map(|(secret, _)| secret.name)
            ),
        ))
    }

    /// A new store in `dir`, which must not hold one (a restore moves the old one aside).
    pub fn create(dir: &Path) -> Result<Self> {
        lemur_core::files::create_private_dir(dir)?;
        Ok(Self::at(dir))
    }

    /// Writes each of `secrets`, encrypted for this machine (a restore; their names were
    /// checked by [`Credstore::check_complete`]).
    pub fn encrypt_all(&self, secrets: &[(String, Zeroizing<Vec<u8>>)]) -> Result<()> {
        for (name, value) in secrets {
            let file = self.path(name);
            replace_private(&file, &encrypt(name, value)?, None)?;
            eprintln!("wrote the encrypted credential {}", file.display());
        }
        Ok(())
    }

    /// What brings a credential back.
    fn restore_hint(&self) -> String {
        format!(
            "Restore {} together with {HOST_KEY} from a backup of this appliance, and boot it on the same TPM if it used one",
            self.dir.display()
        )
    }
}

/// `systemd-creds encrypt` of `clear` under `name`, which systemd checks against the name the
/// unit loads it as. Not bound to TPM PCRs (`--tpm2-pcrs=`): a firmware or Secure Boot update
/// changes PCR 7, and a PIN that no longer decrypts is every CA key in the token lost.
fn encrypt(name: &str, clear: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let name_option = format!("--name={name}");
    systemd_creds(&["encrypt", &name_option, "--tpm2-pcrs=", "-", "-"], clear)?.map_err(|status| {
        Error::io(format!("encrypting the credential {name}"))(std::io::Error::other(format!(
            "systemd-creds refused ({status}; its complaint is above): check that {HOST_KEY} can be written (or that the TPM works), then boot again"
        )))
    })
}

/// Runs `systemd-creds` with `input` on its stdin: its stdout, or its exit status when it
/// refused (its complaint, on stderr, passes through to the journal: it never holds a secret).
/// The output is read into one buffer that is wiped when dropped and never grows (a growing
/// buffer leaves copies of a secret behind).
fn systemd_creds(
    arguments: &[&str],
    input: &[u8],
) -> Result<std::result::Result<Zeroizing<Vec<u8>>, ExitStatus>> {
    let context = format!("running systemd-creds {}", arguments.join(" "));
    let mut child = Command::new("systemd-creds")
        .args(arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(Error::io(format!(
            "{context} (it comes with Debian's systemd package)"
        )))?;
    // Dropped at the end of the block: systemd-creds sees the end of its input.
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(Error::io(context.clone()))?;
    }
    let mut output = Zeroizing::new(vec![0u8; MAX_OUTPUT]);
    let mut filled = 0;
    if let Some(mut stdout) = child.stdout.take() {
        while filled < output.len() {
            match stdout.read(&mut output[filled..]) {
                Ok(0) => break,
                Ok(read) => filled += read,
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(Error::io(context)(error)),
            }
        }
    }
    if filled == output.len() {
        let _ = child.kill();
        let _ = child.wait();
        return Err(Error::io(context)(std::io::Error::other(format!(
            "it printed more than {MAX_OUTPUT} bytes, more than any credential here holds"
        ))));
    }
    let status = child.wait().map_err(Error::io(context))?;
    if !status.success() {
        return Ok(Err(status));
    }
    output.truncate(filled);
    Ok(Ok(output))
}
