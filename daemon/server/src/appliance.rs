//! `POST /appliance/upgrade`: a new release of the appliance image, uploaded as its signed
//! bundle. The daemon only receives and checks it; root installs it (see `lemur_core::upgrade`).
//! `POST /appliance/backup`: a backup of the appliance, made by root's backup service and passed
//! on as it comes (see `lemur_core::backup::service`).

use super::{ApiError, AppState, Caller, JsonBody};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use lemur_api::{BackupRequest, Binary, ErrorBody, UpgradeStaged};
use lemur_core::backup::service;
use lemur_core::{Error, upgrade};
use std::time::Duration;

/// Upload a release bundle (`lemur-hsm-VERSION.upgrade`, as the request body). Administrators
/// only. The daemon checks its signature and every byte, then stages it; the appliance writes
/// it into the root slot it is not running from and restarts into it. A release that does not
/// come up healthy three times is left for the slot it came from.
#[utoipa::path(operation_id = "upgradeAppliance", post, path = "/appliance/upgrade", tag = "appliance",
    request_body(content = inline(Binary), content_type = "application/octet-stream",
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

/// Download a backup of the appliance: the database, the HSM token, the configuration and the
/// credentials, in one archive sealed under the passphrase (`lemur appliance restore` takes
/// it). Administrators only; audited. The archive is streamed as root's backup service makes
/// it: a download that breaks off is no whole archive (restore refuses it), and says so.
#[utoipa::path(operation_id = "backupAppliance", post, path = "/appliance/backup", tag = "appliance",
    request_body = BackupRequest, security(("bearer" = [])),
    responses(
        (status = 200, description = "The archive, streamed", content_type = "application/octet-stream", body = inline(Binary)),
        (status = 400, description = "Passphrase too short or not one line (reasons.passphrase)", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 409, description = "This is not an appliance (use lemur backup)", body = ErrorBody),
        (status = 503, description = "The backup service is not running or failed", body = ErrorBody),
    ))]
pub async fn backup(
    State(app): AppState,
    Caller(subject): Caller,
    JsonBody(body): JsonBody<BackupRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let passphrase = body.passphrase.into_inner();
    let download = service::start(&app, &subject, &passphrase).await?;
    drop(passphrase);
    // Chunks as they come; after a failure, the response ends there, cut off.
    let chunks = futures_util::stream::unfold(Some(download), |download| async move {
        let mut download = download?;
        match download.next_chunk().await {
            Ok(Some(chunk)) => Some((Ok(axum::body::Bytes::from(chunk)), Some(download))),
            Ok(None) => None,
            Err(error) => {
                log::error!("the backup download broke off: {error}");
                Some((Err(std::io::Error::other(error.to_string())), None))
            }
        }
    });
    let name = format!(
        "attachment; filename=\"lemur-backup-{}.lemur\"",
        crate::views::date(app.clock.unix())
            .replace([':', '-'], "")
            .trim_end_matches('Z')
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, name),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(chunks),
    ))
}
