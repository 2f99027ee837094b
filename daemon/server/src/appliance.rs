//! `POST /appliance/upgrade`: a new release of the appliance image, uploaded as its signed
//! bundle. The daemon only receives and checks it; root installs it (see `lemur_core::upgrade`).

use super::{ApiError, AppState, Caller};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use lemur_api::{ErrorBody, UpgradeStaged};
use lemur_core::{Error, upgrade};
use std::time::Duration;

/// Upload a release bundle (`lemur-hsm-VERSION.upgrade`, as the request body). Administrators
/// only. The daemon checks its signature and every byte, then stages it; the appliance writes
/// it into the root slot it is not running from and restarts into it. A release that does not
/// come up healthy three times is left for the slot it came from.
#[utoipa::path(operation_id = "upgradeAppliance", post, path = "/appliance/upgrade", tag = "appliance",
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The bundle, lemur-hsm-VERSION.upgrade"),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Checked and staged: the appliance installs it and restarts", body = UpgradeStaged),
        (status = 400, description = "Not a bundle, not signed with the release key, or damaged (reasons.bundle)", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 408, description = "The upload stalled", body = ErrorBody),
        (status = 409, description = "Another upgrade is being uploaded or installed, or this is not an appliance", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
        (status = 507, description = "The appliance's data partition has no room for the bundle", body = ErrorBody),
    ))]
pub async fn upgrade(
    State(app): AppState,
    Caller(subject): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<UpgradeStaged>), ApiError> {
    // A stall, not the whole upload, is limited: a large bundle on a slow link is fine.
    let stall = Duration::from_secs(app.config.server.request_timeout_secs.max(1));
    let mut stream = body;
    let announced = headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    let mut staging = match upgrade::begin(&app, &subject, announced).await {
        Ok(staging) => staging,
        Err(refused) => {
            discard(&mut stream, stall).await;
            return Err(refused.into());
        }
    };
    while let Some(frame) = tokio::time::timeout(stall, stream.frame())
        .await
        .map_err(|_| Error::RequestTimeout)?
    {
        let frame =
            frame.map_err(|e| Error::invalid("bundle", format!("the upload broke off: {e}")))?;
        if let Ok(chunk) = frame.into_data() {
            staging.write(&chunk).await?;
        }
    }
    let manifest = staging.finish(&app, &subject).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(UpgradeStaged {
            version: manifest.version,
            source: manifest.source,
            status: "checked and staged: the appliance writes it into its other root slot, then \
                     restarts into it"
                .to_owned(),
        }),
    ))
}

/// Reads what a refused upload sent, up to a little, so that the connection can carry the
/// client's next request; past that the connection closes with the answer.
async fn discard(body: &mut Body, stall: Duration) {
    const ENOUGH: usize = 1 << 20;
    let mut read = 0;
    while read < ENOUGH {
        match tokio::time::timeout(stall, body.frame()).await {
            Ok(Some(Ok(frame))) => read += frame.data_ref().map_or(0, |data| data.len()),
            _ => break,
        }
    }
}
