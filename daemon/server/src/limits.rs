//! How many connections the daemon holds open: at most `server.max_connections` in all (a
//! connection waits in the kernel's backlog for a place), and at most
//! `server.max_connections_per_client` from one address, so one client cannot take every place
//! (past that its new connections are closed at once). Trusted proxies and the unix socket carry
//! many clients and are bounded only by the total.

use lemur_core::config::{ServerConfig, TrustedProxies};
use lemur_core::{Error, Result};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// File descriptors kept back from the connection cap: the database pool, the HSM, logs, the
/// listener and files the daemon opens.
const RESERVED_DESCRIPTORS: u64 = 128;

/// The connection limits of one listener.
pub(crate) struct ConnectionLimits {
    places: Arc<Semaphore>,
    per_client: usize,
    exempt: TrustedProxies,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's hold on its places; released when the connection closes.
pub(crate) struct Place {
    _total: OwnedSemaphorePermit,
    client: Option<(Arc<ConnectionLimits>, IpAddr)>,
}

impl ConnectionLimits {
    /// The limits `server` sets, once the total is known to fit the process's open-file limit.
    pub(crate) fn new(server: &ServerConfig) -> Result<Arc<Self>> {
        let total = server.max_connections.max(1);
        let descriptors = lemur_core::files::raise_open_file_limit()?;
        let fits = descriptors.saturating_sub(RESERVED_DESCRIPTORS);
        if total as u64 > fits {
            return Err(Error::invalid(
                "server.max_connections",
                format!(
                    "{total} connections do not fit this process's open-file limit of \
                     {descriptors} ({RESERVED_DESCRIPTORS} are kept for everything else): lower \
                     it to {fits} or raise LimitNOFILE= in the service unit"
                ),
            ));
        }
        if server.max_in_flight_requests >= total {
            log::warn!(
                "server.max_in_flight_requests ({}) is not below server.max_connections \
                 ({total}): requests will queue for a connection rather than be answered 503 \
                 when busy",
                server.max_in_flight_requests
            );
        }
        Ok(Arc::new(Self {
            places: Arc::new(Semaphore::new(total)),
            per_client: server.max_connections_per_client.max(1),
            exempt: server.trusted_proxies.clone(),
            open: Mutex::new(HashMap::new()),
        }))
    }

    /// Waits for a place under the total.
    pub(crate) async fn wait_for_place(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed; were it, no place would ever come free.
        match Arc::clone(&self.places).acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => std::future::pending().await,
        }
    }

    /// Admits a connection from `peer` holding `total`, or refuses it (`None`) when its address
    /// has as many open as it may.
    pub(crate) fn admit(
        self: &Arc<Self>,
        total: OwnedSemaphorePermit,
        peer: Option<SocketAddr>,
    ) -> Option<Place> {
        let Some(ip) = peer.map(|peer| peer.ip().to_canonical()) else {
            return Some(Place {
                _total: total,
                client: None,
            });
        };
        if self.exempt.contains(Some(ip)) {
            return Some(Place {
                _total: total,
                client: None,
            });
        }
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_default();
        if *count >= self.per_client {
            log::debug!("closing a connection from {ip}: it has {count} open already");
            return None;
        }
        *count += 1;
        Some(Place {
            _total: total,
            client: Some((Arc::clone(self), ip)),
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some((limits, ip)) = self.client.take() {
            let mut open = limits.open.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = open.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    open.remove(&ip);
                }
            }
        }
    }
}
