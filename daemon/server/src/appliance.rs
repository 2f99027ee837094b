//! `POST /appliance/upgrade`: a new release of the appliance image, uploaded as its signed
//! bundle. The daemon only receives and checks it; root installs it (see `lemur_core::upgrade`).
//! `POST /appliance/backup`: a backup of the appliance, made by root's backup service and passed
//! on as it comes (see `lemur_core::backup::service`).
//! `POST /appliance/restore`: a backup, passed on as it comes to root's restore service, which
//! checks it, then replaces this daemon's state with it (see `lemur_core::backup::api_restore`);
//! `GET /appliance/restore` tells how the last one went.

use super::{ApiError, AppState, Caller, JsonBody};
use axum::Json;
use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{Multipart, State};
use axum::http::header;
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use http_body_util::BodyExt;
use lemur_api::{
    ApplianceRestore, ApplianceUpgrade, BackupRequest, Binary, ErrorBody, RestoreAccepted,
    RestoreForm, RestoreState, UpgradeRecord, UpgradeStaged, UpgradeState,
};
use lemur_core::backup::{api_restore, service};
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

/// The release running, a bundle staged and waiting, and how the last upgrade went (installing,
/// with its progress; restarting; on trial; passed; fallen back to the release before; failed),
/// as the appliance's installer and trial record it. Administrators only.
#[utoipa::path(operation_id = "getApplianceUpgrade", get, path = "/appliance/upgrade", tag = "appliance",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Where it stands", body = ApplianceUpgrade),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 409, description = "This is not an appliance", body = ErrorBody),
        (status = 503, description = "The status file does not read", body = ErrorBody),
    ))]
pub async fn upgrade_status(
    State(app): AppState,
    Caller(subject): Caller,
) -> Result<Json<ApplianceUpgrade>, ApiError> {
    let upgrades = upgrade::status::read(&app, &subject).await?;
    Ok(Json(ApplianceUpgrade {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        slot: upgrades.slot,
        staged: upgrades.staged,
        last: upgrades.last.map(|last| UpgradeRecord {
            state: match last.state {
                upgrade::status::UpgradeState::Installing => UpgradeState::Installing,
                upgrade::status::UpgradeState::Restarting => UpgradeState::Restarting,
                upgrade::status::UpgradeState::OnTrial => UpgradeState::OnTrial,
                upgrade::status::UpgradeState::Passed => UpgradeState::Passed,
                upgrade::status::UpgradeState::FellBack => UpgradeState::FellBack,
                upgrade::status::UpgradeState::Failed => UpgradeState::Failed,
            },
            version: last.version,
            from_version: last.from_version,
            slot: last.slot,
            written: last.written,
            total: last.total,
            started_at: crate::views::date(last.started_at),
            updated_at: crate::views::date(last.updated_at),
            error: last.error,
        }),
    }))
}

/// How much of a refused upload is read before the connection is closed with the answer: a
/// client still sending when it is refused (most do) reads the answer only if it could send.
const DISCARDED: usize = 8 << 20;

/// Reads what a refused upload sent, up to a little, so that the connection can carry the
/// client's next request; past that the connection closes with the answer.
async fn discard(body: &mut Body, stall: Duration) {
    let mut read = 0;
    while read < DISCARDED {
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

/// Restore a backup onto this appliance: everything it holds (certificates, authorities and
/// their keys, users, configuration, credentials) replaces what is here. Administrators only;
/// audited. The form's `passphrase` comes first, then its `archive`, which is passed on as it
/// arrives to root's restore service; the answer comes once the service has checked the whole
/// archive with the passphrase. Then the appliance stops this daemon and nginx, restores, and
/// starts them again on the backup (or, when that fails, on what was there): sign in again with
/// the backup's credentials, and read `GET /appliance/restore`.
#[utoipa::path(operation_id = "restoreAppliance", post, path = "/appliance/restore", tag = "appliance",
    request_body(content = inline(RestoreForm), content_type = "multipart/form-data",
        description = "passphrase, then archive"),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Checked whole: the appliance restarts on it", body = RestoreAccepted),
        (status = 400, description = "Not such a form, a passphrase that does not open the archive, or an archive damaged, cut short or of a newer release (reasons.passphrase, reasons.archive)", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 408, description = "The upload stalled", body = ErrorBody),
        (status = 409, description = "Another restore is under way, or this is not an appliance", body = ErrorBody),
        (status = 503, description = "The restore service is not running or failed", body = ErrorBody),
        (status = 507, description = "The appliance's data partition has no room for the archive", body = ErrorBody),
    ))]
pub async fn restore(
    State(app): AppState,
    Caller(subject): Caller,
    form: Result<Multipart, MultipartRejection>,
) -> Result<impl IntoResponse, ApiError> {
    api_restore::check_allowed(&app, &subject)?;
    let mut form = form.map_err(|e| {
        Error::invalid(
            "body",
            format!("must be a multipart/form-data form (passphrase, then archive): {e}"),
        )
    })?;
    // A stall, not the whole upload, is limited: a large archive on a slow link is fine.
    let stall = Duration::from_secs(app.config.server.request_timeout_secs.max(1));
    let upload = match receive_restore(&app, &subject, &mut form, stall).await {
        Ok(upload) => upload,
        Err(refused) => {
            discard_form(&mut form, stall).await;
            return Err(refused.into());
        }
    };
    let (accepted, hangup) = upload.finish().await?;
    let answer = RestoreAccepted {
        backup_version: accepted.version,
        backup_created: crate::views::date(accepted.created),
        requested_at: crate::views::date(accepted.requested_at),
        status: "checked whole: the appliance now stops, restores it and starts again on it; \
                 sign in with the backup's credentials"
            .to_owned(),
    };
    let json = serde_json::to_vec(&answer).map_err(|e| Error::Ca(e.to_string()))?;
    // The connection to the restore service goes with the body, when the body is asked for
    // more after its one chunk (handed to the connection by then): the service stops this
    // daemon only then, and the daemon's graceful shutdown lets the answer finish.
    let body = futures_util::stream::unfold((Some(json), hangup), |(json, hangup)| async move {
        // Asked again: the stream ends, and the connection with it.
        let chunk = json?;
        Some((
            Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk)),
            (None, hangup),
        ))
    });
    Ok((
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(body),
    ))
}

/// The form of `POST /appliance/restore`, its archive passed on to root's restore service as it
/// comes: the upload, whole, for the service's verdict.
async fn receive_restore(
    app: &lemur_core::App,
    subject: &lemur_core::policy::Subject,
    form: &mut Multipart,
    stall: Duration,
) -> Result<api_restore::Upload, Error> {
    let mut passphrase = None;
    let mut upload = None;
    while let Some(mut field) = in_time(stall, form.next_field()).await? {
        match (field.name(), &passphrase, &upload) {
            (Some("passphrase"), None, None) => {
                passphrase = Some(small_field(&mut field, stall).await?);
            }
            (Some("archive"), Some(passphrase), None) => {
                let mut receiving = api_restore::start(app, subject, passphrase).await?;
                while let Some(chunk) = in_time(stall, field.chunk()).await? {
                    receiving.write(&chunk).await?;
                }
                upload = Some(receiving);
            }
            (Some("archive"), None, _) => {
                return Err(Error::invalid("passphrase", "must come before the archive"));
            }
            (name, _, _) => {
                let name = name.unwrap_or("form").to_owned();
                return Err(Error::invalid(
                    &name,
                    "is not expected here: the form has passphrase, then archive, once each",
                ));
            }
        }
    }
    upload.ok_or_else(|| Error::invalid("archive", "is missing"))
}

/// Reads what is left of a refused form, up to [`DISCARDED`], as [`discard`] does for a body.
async fn discard_form(form: &mut Multipart, stall: Duration) {
    let mut read = 0;
    while read < DISCARDED {
        let Ok(Ok(Some(mut field))) = tokio::time::timeout(stall, form.next_field()).await else {
            return;
        };
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout(stall, field.chunk()).await {
            read += chunk.len();
            if read >= DISCARDED {
                return;
            }
        }
    }
}

/// The last restore asked through the API, as root's restore service recorded it.
#[utoipa::path(operation_id = "getApplianceRestore", get, path = "/appliance/restore", tag = "appliance",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Where it stands", body = ApplianceRestore),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an administrator", body = ErrorBody),
        (status = 409, description = "This is not an appliance", body = ErrorBody),
        (status = 503, description = "The status file does not read", body = ErrorBody),
    ))]
pub async fn restore_status(
    State(app): AppState,
    Caller(subject): Caller,
) -> Result<Json<ApplianceRestore>, ApiError> {
    let Some(status) = api_restore::status(&app, &subject).await? else {
        return Ok(Json(ApplianceRestore::default()));
    };
    Ok(Json(ApplianceRestore {
        state: match status.state {
            api_restore::RestoreState::Restoring => RestoreState::Restoring,
            api_restore::RestoreState::Restored => RestoreState::Restored,
            api_restore::RestoreState::Failed => RestoreState::Failed,
        },
        requested_by: Some(status.requested_by.user),
        requested_from: Some(status.requested_by.source),
        requested_at: Some(crate::views::date(status.requested_at)),
        finished_at: status.finished_at.map(crate::views::date),
        backup_version: Some(status.backup_version),
        backup_created: Some(crate::views::date(status.backup_created)),
        error: status.error,
    }))
}

/// `work`, unless the client stalls longer than `stall` (408); a form that does not parse is a
/// 400 on the body.
async fn in_time<T>(
    stall: Duration,
    work: impl Future<Output = Result<T, axum::extract::multipart::MultipartError>>,
) -> Result<T, Error> {
    tokio::time::timeout(stall, work)
        .await
        .map_err(|_| Error::RequestTimeout)?
        .map_err(|e| Error::invalid("body", format!("the form broke off or does not parse: {e}")))
}

/// A short text field (the passphrase), in zeroizing memory.
async fn small_field(
    field: &mut Field<'_>,
    stall: Duration,
) -> Result<zeroize::Zeroizing<String>, Error> {
    // Room for the longest at once: a buffer that grew would leave a copy behind.
    let mut bytes = zeroize::Zeroizing::new(Vec::with_capacity(api_restore::MAX_LINE));
    while let Some(chunk) = in_time(stall, field.chunk()).await? {
        if bytes.len() + chunk.len() > api_restore::MAX_LINE {
            return Err(Error::invalid(
                "passphrase",
                format!("is longer than {} bytes", api_restore::MAX_LINE),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    let text =
        std::str::from_utf8(&bytes).map_err(|_| Error::invalid("passphrase", "is not UTF-8"))?;
    Ok(zeroize::Zeroizing::new(text.to_owned()))
}
