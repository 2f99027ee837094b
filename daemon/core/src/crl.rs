//! Certificate revocation lists, published without sign-in (relying parties fetch them; they
//! hold nothing secret): `GET /crl/{authority name}`.
//!
//! Each is made by the authority's issuer plugin, kept for [`REFRESH_SECS`], and made again at
//! the next request after a revocation this daemon recorded (another daemon sharing the database
//! lists it once its own copy is [`REFRESH_SECS`] old). One CRL is made at a time, so a burst of
//! requests costs one signature. CRL numbers come from the database, so they grow across
//! daemons and restarts. Every CRL promises the next within [`LIFETIME_SECS`].

use crate::App;
use crate::error::{Error, Result};
use crate::plugins::CrlPlan;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// How long a CRL is served before it is made again.
pub const REFRESH_SECS: i64 = 60 * 60;
/// nextUpdate: how long after it is made a CRL may be relied on.
pub const LIFETIME_SECS: i64 = 7 * 24 * 60 * 60;

/// The CRLs made, by authority name (known authorities only, so the map is bounded by their
/// number), and how many revocations each authority has seen in this daemon.
#[derive(Debug, Default)]
pub struct CrlCache {
    made: Mutex<HashMap<String, Made>>,
    revocations: Mutex<HashMap<i64, u64>>,
    /// Held while a CRL is made.
    building: tokio::sync::Mutex<()>,
}

/// A CRL made, or the answer that the authority's plugin publishes none.
#[derive(Debug, Clone)]
struct Made {
    authority_id: i64,
    at: i64,
    /// The authority's revocation count when its revoked certificates were read.
    revocations: u64,
    der: Option<Arc<Vec<u8>>>,
}

impl CrlCache {
    /// Notes a revocation by `authority_id`: its CRL is made again at the next request.
    pub(crate) fn revoked(&self, authority_id: i64) {
        *self
            .revocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(authority_id)
            .or_default() += 1;
    }

    fn revocations(&self, authority_id: i64) -> u64 {
        self.revocations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&authority_id)
            .copied()
            .unwrap_or_default()
    }

    /// What was made for `name`, when it is recent and no revocation came after it.
    fn fresh(&self, name: &str, now: i64) -> Option<Made> {
        let made = self
            .made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()?;
        (now - made.at < REFRESH_SECS && made.revocations == self.revocations(made.authority_id))
            .then_some(made)
    }

    fn keep(&self, name: &str, made: Made) {
        self.made
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), made);
    }
}

/// The current CRL (DER) of the authority named `name`.
pub async fn current(app: &App, name: &str) -> Result<Arc<Vec<u8>>> {
    let now = app.clock.unix();
    if let Some(made) = app.crls.fresh(name, now) {
        return made.der.ok_or_else(|| none(name));
    }
    let _building = app.crls.building.lock().await;
    // Made by the request this one waited for?
    if let Some(made) = app.crls.fresh(name, now) {
        return made.der.ok_or_else(|| none(name));
    }
    let authority = app
        .store
        .authority_by_name(name)
        .await?
        .ok_or_else(|| none(name))?;
    let revocations = app.crls.revocations(authority.id);
    let issuer = app
        .plugins
        .issuer(&authority.plugin_name)
        .ok_or_else(|| none(name))?;
    let revoked = app.store.revoked_certificates(authority.id, now).await?;
    let plan = CrlPlan {
        revoked: &revoked,
        this_update: now,
        next_update: now + LIFETIME_SECS,
        number: app.store.next_crl_number(authority.id).await?,
    };
    let der = issuer.crl(app, &authority, &plan).await?.map(Arc::new);
    app.crls.keep(
        name,
        Made {
            authority_id: authority.id,
            at: now,
            revocations,
            der: der.clone(),
        },
    );
    der.ok_or_else(|| none(name))
}

fn none(name: &str) -> Error {
    Error::NotFound {
        what: "CRL of authority",
        id: name.to_owned(),
    }
}
