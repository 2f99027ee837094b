//! The domain core of Lemur-HSM: every operation the API, the CLI and (later) the scheduler
//! perform, each a function taking the [`App`] and the [`Subject`](policy::Subject) asking,
//! authorized by one [`policy`], with its rows and audit row stored as one unit of work.
//!
//! Nothing here knows HTTP or a database driver: the inventory is behind the
//! [`store`] traits, keys behind `lemur-hsm`'s `KeyStore` and `Sealer`, certificate authorities
//! behind the issuer [`plugins`]. The `lemur` binary picks the implementations.

pub mod app;
pub mod auth;
pub mod authorities;
pub mod backup;
pub mod ca;
pub mod certificates;
pub mod clock;
pub mod config;
pub mod crl;
pub mod domains;
mod error;
pub mod expirations;
pub mod files;
pub mod frontend;
pub mod health;
pub mod kek;
pub mod listing;
pub mod locked;
pub mod metrics;
pub mod model;
pub mod pending;
pub mod plugins;
pub mod policy;
pub mod requests;
pub mod status_file;
pub mod store;
pub mod timeline;
pub mod upgrade;
pub mod users;

pub use app::{App, Parts};
pub use error::{Error, Result};
/// Key algorithms, as the store names them too.
pub use lemur_hsm::KeyAlgorithm;
