//! Certificate revocation lists, published without sign-in (relying parties fetch them; they
//! hold nothing secret): `GET /crl/{authority name}`. Each is made by the authority's issuer
//! plugin, kept for [`REFRESH_SECS`] and made again at once after a revocation through this
//! daemon; another daemon sharing the database lists it within that time. Every CRL promises
//! the next within [`LIFETIME_SECS`], so a relying party never holds one that has lapsed.

use crate::App;
use crate::error::{Error, Result};
use crate::plugins::CrlPlan;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// How long a CRL is served before it is made again.
pub const REFRESH_SECS: i64 = 60 * 60;
/// nextUpdate: how long after it is made a CRL may be relied on.
pub const LIFETIME_SECS: i64 = 7 * 24 * 60 * 60;

/// The CRLs made, by authority id, with when each was made and the last CRL number used.
#[derive(Debug, Default)]
pub struct CrlCache(Mutex<HashMap<i64, Made>>);

#[derive(Debug, Clone)]
struct Made {
    at: i64,
    number: u64,
    der: Option<Arc<Vec<u8>>>,
}

impl CrlCache {
    /// Forgets the CRL of `authority_id` (a certificate it issued was revoked), keeping its
    /// number so the next one's is greater.
    pub(crate) fn revoked(&self, authority_id: i64) {
        if let Some(made) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&authority_id)
        {
            made.der = None;
        }
    }

    fn fresh(&self, authority_id: i64, now: i64) -> Option<Arc<Vec<u8>>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&authority_id)
            .filter(|made| now - made.at < REFRESH_SECS)
            .and_then(|made| made.der.clone())
    }

    /// The next CRL number: milliseconds-like from the clock (so numbers keep growing across
    /// restarts), and above the last one this daemon used.
    fn next_number(&self, authority_id: i64, now: i64) -> u64 {
        let last = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&authority_id)
            .map_or(0, |made| made.number);
        (u64::try_from(now).unwrap_or(0) * 1000).max(last + 1)
    }

    fn keep(&self, authority_id: i64, made: Made) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(authority_id, made);
    }
}

/// The current CRL (DER) of the authority named `name`.
pub async fn current(app: &App, name: &str) -> Result<Arc<Vec<u8>>> {
    let not_found = || Error::NotFound {
        what: "CRL of authority",
        id: name.to_owned(),
    };
    let authority = app
        .store
        .authority_by_name(name)
        .await?
        .ok_or_else(not_found)?;
    let now = app.clock.unix();
    if let Some(der) = app.crls.fresh(authority.id, now) {
        return Ok(der);
    }
    let issuer = app
        .plugins
        .issuer(&authority.plugin_name)
        .ok_or_else(not_found)?;
    let revoked = app.store.revoked_certificates(authority.id, now).await?;
    let number = app.crls.next_number(authority.id, now);
    let plan = CrlPlan {
        revoked: &revoked,
        this_update: now,
        next_update: now + LIFETIME_SECS,
        number,
    };
    let der = Arc::new(
        issuer
            .crl(app, &authority, &plan)
            .await?
            .ok_or_else(not_found)?,
    );
    app.crls.keep(
        authority.id,
        Made {
            at: now,
            number,
            der: Some(Arc::clone(&der)),
        },
    );
    Ok(der)
}
