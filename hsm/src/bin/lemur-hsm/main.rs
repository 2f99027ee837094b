//! `lemur-hsm`: the operator's tool for the appliance's HSM.
//!
//! Initialise a token, check it (`status`, `self-test`, `entropy`), manage CA keys and the
//! key-encryption keys that seal stored secrets, change the user PIN. PINs come from files (systemd
//! credentials) or a prompt without echo, never from the command line. Human output by default,
//! `--json` for scripts; the exit code says what kind of failure happened (see [`ExitCode`]).

mod output;
mod pins;

use clap::{Parser, Subcommand};
use lemur_entropy::{CheckConfig, HealthMonitor, OsRng};
use lemur_hsm::{Error, HsmConfig, KeyAlgorithm, KeyStore, Pkcs11KeyStore};
use output::Output;
use std::path::PathBuf;
use std::sync::Arc;

/// Exit codes, stable for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum ExitCode {
    Ok = 0,
    /// A check ran and found a problem (self-test, entropy, status).
    CheckFailed = 1,
    /// Configuration: module, token, PIN file or KEK missing; bad argument values.
    Config = 3,
    /// The PIN was refused or is locked.
    Auth = 4,
    /// The HSM is not reachable right now; retrying later may work.
    Unavailable = 5,
    /// Key generation refused by the entropy health gate.
    Entropy = 6,
    /// Any other HSM failure.
    Hsm = 7,
}

fn exit_code(error: &Error) -> ExitCode {
    match error {
        Error::ModuleNotFound { .. }
        | Error::ModuleLoad { .. }
        | Error::TokenNotFound { .. }
        | Error::TokenExists { .. }
        | Error::NoFreeSlot
        | Error::PinFile { .. }
        | Error::InvalidUri { .. }
        | Error::KeyExists { .. }
        | Error::KekNotFound { .. }
        | Error::KekExists { .. }
        | Error::Unsupported(_) => ExitCode::Config,
        Error::PinIncorrect { .. } | Error::PinLocked { .. } | Error::LoginDisabled(_) => {
            ExitCode::Auth
        }
        Error::TokenUnavailable { .. } | Error::PoolTimeout(_) => ExitCode::Unavailable,
        Error::Entropy(_) => ExitCode::Entropy,
        _ => ExitCode::Hsm,
    }
}

#[derive(Parser)]
#[command(
    name = "lemur-hsm",
    version,
    about = "Administer the Lemur-HSM appliance's HSM token"
)]
#[command(
    after_help = "Exit codes: 0 ok, 1 a check failed, 2 usage, 3 configuration, 4 PIN refused or locked, 5 HSM unreachable, 6 entropy health failing, 7 other HSM error."
)]
struct Cli {
    /// PKCS#11 module; SoftHSM2's Debian path when absent.
    #[arg(long, global = true, env = "LEMUR_HSM_MODULE")]
    module: Option<PathBuf>,
    /// Token label.
    #[arg(long, global = true, env = "LEMUR_HSM_TOKEN", default_value = "lemur")]
    token: String,
    /// File with the user PIN; else $CREDENTIALS_DIRECTORY/hsm-pin, else a prompt.
    #[arg(long, global = true, env = "LEMUR_HSM_PIN_FILE")]
    pin_file: Option<PathBuf>,
    /// Family label of the key-encryption keys.
    #[arg(
        long,
        global = true,
        env = "LEMUR_HSM_KEK_LABEL",
        default_value = "lemur-kek"
    )]
    kek_label: String,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Initialise a new token labelled --token and set its user PIN.
    InitToken {
        /// File with the security officer PIN; prompted when absent.
        #[arg(long)]
        so_pin_file: Option<PathBuf>,
    },
    /// Show the module, its slots, and whether the token is usable.
    Status,
    /// List the keys in the token.
    List,
    /// Generate a CA key pair inside the token.
    GenerateKey {
        /// The key's label (CKA_LABEL).
        #[arg(long)]
        label: String,
        /// p256, p384, rsa2048, rsa3072 or rsa4096.
        #[arg(long, default_value = "p256")]
        algorithm: String,
    },
    /// Prove a key cannot leave the token: read its secret value and try to wrap it.
    Probe {
        /// The key's PKCS#11 URI.
        #[arg(long)]
        uri: String,
    },
    /// Create the first key-encryption key (AES-256, sealed secrets).
    CreateKek,
    /// Create a new key-encryption key version; old envelopes still open.
    RotateKek,
    /// Change the user PIN (old PIN from --pin-file or a prompt).
    ChangePin {
        /// File with the new PIN; prompted twice when absent.
        #[arg(long)]
        new_pin_file: Option<PathBuf>,
    },
    /// Sign/verify and seal/unseal round trips on every key type; leaves nothing in the token.
    SelfTest,
    /// Run the SP 800-90B health tests on the OS and HSM random sources.
    Entropy {
        /// Samples per source.
        #[arg(long, default_value_t = 64 * 1024)]
        samples: usize,
    },
}

/// Every heap block is wiped when freed, so PINs and key material that pass through cryptoki
/// or clap leave no copy behind.
#[global_allocator]
static ALLOCATOR: zeroizing_alloc::ZeroAlloc<std::alloc::System> =
    zeroizing_alloc::ZeroAlloc(std::alloc::System);

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let out = Output::new(cli.json);
    let code = match run(&cli, &out) {
        Ok(code) => code,
        Err(error) => {
            let code = exit_code(&error);
            out.error(&error.to_string(), code as u8);
            code
        }
    };
    std::process::ExitCode::from(code as u8)
}

impl Cli {
    fn module(&self) -> PathBuf {
        lemur_hsm::resolve_module(self.module.as_deref())
    }

    fn config(&self, pin_file: PathBuf) -> HsmConfig {
        let mut config = HsmConfig::new(self.token.clone(), pin_file);
        config.module = Some(self.module());
        config.kek_label = self.kek_label.clone();
        config
    }

    /// Opens the key store with an entropy monitor over the OS and token RNGs that has run once.
    fn open(&self, samples: usize) -> Result<(Pkcs11KeyStore, Arc<HealthMonitor>), Error> {
        let pin = pins::user_pin(self.pin_file.as_deref(), "User PIN")?;
        let config = CheckConfig {
            samples_per_source: samples,
            ..CheckConfig::default()
        };
        let monitor = Arc::new(HealthMonitor::new(config, vec![Arc::new(OsRng)]));
        let store =
            Pkcs11KeyStore::open_with_pin(&self.config(PathBuf::new()), pin, Arc::clone(&monitor))?;
        monitor.add_source(store.rng_source());
        monitor.check();
        Ok((store, monitor))
    }
}

fn run(cli: &Cli, out: &Output) -> Result<ExitCode, Error> {
    let default_samples = CheckConfig::default().samples_per_source;
    match &cli.command {
        Command::InitToken { so_pin_file } => {
            let so_pin = pins::new_pin(so_pin_file.as_deref(), "Security officer PIN")?;
            let user_pin = pins::new_pin(cli.pin_file.as_deref(), "User PIN")?;
            let token =
                lemur_hsm::admin::init_token(&cli.module(), &cli.token, &so_pin, &user_pin)?;
            out.init_token(&token);
            Ok(ExitCode::Ok)
        }
        Command::Status => {
            let pin = pins::optional_user_pin(cli.pin_file.as_deref())?;
            let status = lemur_hsm::admin::status(&cli.module(), &cli.token, pin.as_ref())?;
            out.status(&status, &cli.token);
            Ok(if status.token.as_ref().is_some_and(|t| t.ready()) {
                ExitCode::Ok
            } else {
                ExitCode::CheckFailed
            })
        }
        Command::List => {
            let (store, _) = cli.open(default_samples)?;
            out.keys(&store.list()?);
            Ok(ExitCode::Ok)
        }
        Command::GenerateKey { label, algorithm } => {
            let algorithm: KeyAlgorithm = algorithm.parse()?;
            let (store, _) = cli.open(default_samples)?;
            let key = store.generate_key_pair(label, algorithm, false)?;
            let public = store.public_key(&key.uri)?;
            out.generated_key(&key, &public.spki_der());
            Ok(ExitCode::Ok)
        }
        Command::Probe { uri } => {
            let (store, _) = cli.open(default_samples)?;
            let probe = store.probe_extraction(&uri.parse()?)?;
            out.probe(&probe);
            Ok(if probe.key_stays_in_token() {
                ExitCode::Ok
            } else {
                ExitCode::CheckFailed
            })
        }
        Command::CreateKek => {
            let (store, _) = cli.open(default_samples)?;
            out.kek(&store.create_kek()?, "created");
            Ok(ExitCode::Ok)
        }
        Command::RotateKek => {
            let (store, _) = cli.open(default_samples)?;
            out.kek(&store.rotate_kek()?, "rotated to");
            Ok(ExitCode::Ok)
        }
        Command::ChangePin { new_pin_file } => {
            let old = pins::user_pin(cli.pin_file.as_deref(), "Current user PIN")?;
            let new = pins::new_pin(new_pin_file.as_deref(), "New user PIN")?;
            lemur_hsm::admin::change_pin(&cli.module(), &cli.token, &old, &new)?;
            out.message("user PIN changed");
            Ok(ExitCode::Ok)
        }
        Command::SelfTest => {
            let (store, monitor) = cli.open(default_samples)?;
            monitor.ensure_healthy()?;
            let report = lemur_hsm::self_test::run(&store);
            out.self_test(&report);
            Ok(if report.passed {
                ExitCode::Ok
            } else {
                ExitCode::CheckFailed
            })
        }
        Command::Entropy { samples } => {
            let (_, monitor) = cli.open(*samples)?;
            let report = monitor.check();
            out.entropy(&report);
            Ok(if report.healthy {
                ExitCode::Ok
            } else {
                ExitCode::CheckFailed
            })
        }
    }
}
