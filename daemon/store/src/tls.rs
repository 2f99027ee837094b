//! How the daemon reaches PostgreSQL: users, roles and token validity come from the database,
//! so a server on another machine is only trusted once its certificate and name are verified
//! (`sslmode=verify-full`). A server on this machine (loopback or a unix socket) is reached as the
//! URL says.

use crate::bad_url;
use lemur_core::Result;
use lemur_core::config::DatabaseConfig;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use std::net::IpAddr;

/// Whether `options` reach a server on this machine.
fn on_this_machine(options: &PgConnectOptions) -> bool {
    let host = options.get_host();
    options.get_socket().is_some()
        || host.starts_with('/')
        || host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The options with the TLS the configuration requires: `verify-full` for a server elsewhere
/// (the default `prefer` is raised to it), an error for a weaker mode unless
/// `allow_unverified_tls` is set, which is logged as a warning.
pub fn policy(mut options: PgConnectOptions, config: &DatabaseConfig) -> Result<PgConnectOptions> {
    if let Some(ca) = &config.tls_ca_file {
        options = options.ssl_root_cert(ca);
    }
    if on_this_machine(&options) {
        return Ok(options);
    }
    match options.get_ssl_mode() {
        PgSslMode::VerifyFull => Ok(options),
        PgSslMode::Prefer if !config.allow_unverified_tls => {
            Ok(options.ssl_mode(PgSslMode::VerifyFull))
        }
        mode if config.allow_unverified_tls => {
            log::warn!(
                "database.allow_unverified_tls: PostgreSQL at {} is reached with sslmode {mode:?}, \
                 without verifying its certificate and name",
                options.get_host()
            );
            Ok(options)
        }
        mode => Err(bad_url(format!(
            "sslmode {mode:?} does not verify the PostgreSQL server at {}; use sslmode=verify-full \
             (with database.tls_ca_file for a private CA), or set database.allow_unverified_tls = true",
            options.get_host()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn config(allow: bool) -> DatabaseConfig {
        DatabaseConfig {
            url: String::new(),
            password_file: None,
            max_connections: 1,
            acquire_timeout_secs: 1,
            tls_ca_file: None,
            allow_unverified_tls: allow,
        }
    }

    fn mode(url: &str, allow: bool) -> std::result::Result<PgSslMode, String> {
        policy(PgConnectOptions::from_str(url).unwrap(), &config(allow))
            .map(|options| options.get_ssl_mode())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_server_elsewhere_must_be_verified() {
        assert!(matches!(
            mode("postgres://lemur@db.example.com/lemur", false),
            Ok(PgSslMode::VerifyFull)
        ));
        assert!(matches!(
            mode("postgres://lemur@10.1.2.3/lemur?sslmode=verify-full", false),
            Ok(PgSslMode::VerifyFull)
        ));
        for weak in ["disable", "allow", "require", "verify-ca"] {
            let error = mode(
                &format!("postgres://lemur@db.example.com/lemur?sslmode={weak}"),
                false,
            )
            .unwrap_err();
            assert!(error.contains("verify-full"), "{weak}: {error}");
            assert!(error.contains("database.url"), "{weak}: {error}");
        }
        assert!(matches!(
            mode(
                "postgres://lemur@db.example.com/lemur?sslmode=require",
                true
            ),
            Ok(PgSslMode::Require)
        ));
    }

    #[test]
    fn a_server_on_this_machine_is_reached_as_the_url_says() {
        for url in [
            "postgres://lemur@127.0.0.1/lemur?sslmode=disable",
            "postgres://lemur@localhost/lemur?sslmode=disable",
            "postgres://lemur@[::1]/lemur?sslmode=disable",
            "postgres://lemur@%2Frun%2Fpostgresql/lemur",
        ] {
            assert!(mode(url, false).is_ok(), "{url}");
        }
    }
}
