//! Integration tests of the `lemur` daemon: the real binary over HTTP, on SQLite and on a
//! throwaway PostgreSQL cluster, every issued certificate checked by openssl and pkilint.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

mod api;
mod appliance;
mod authz;
mod backup;
mod ca;
mod cli;
mod client;
mod crash;
mod dev;
mod inventory;
mod key_stock;
mod logging;
mod metrics;
mod nginx;
mod openapi;
mod pending;
mod secrets;
mod store;
mod support;
mod systemd;
mod web;
