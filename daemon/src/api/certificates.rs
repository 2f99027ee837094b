//! `GET/POST /certificates`, `GET /certificates/{id}`, `POST /certificates/upload`,
//! `GET /certificates/{id}/key`.

use super::requests::{AuthorityRef, Extensions, IdRef, SubjectRequest, validity};
use super::{ApiError, AppState, Caller, IdPath, JsonBody, Paging, QueryParams, views};
use crate::ca::{self, IssueRequest, UploadRequest};
use crate::error::Error;
use crate::store::{CertificateFilter, CertificateRecord};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};
use zeroize::Zeroizing;

/// Lemur's certificate creation body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateBody {
    owner: String,
    #[serde(default)]
    common_name: String,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    notify: bool,
    #[serde(default)]
    rotation: bool,
    validity_start: Option<String>,
    validity_end: Option<String>,
    validity_years: Option<i64>,
    key_type: Option<String>,
    csr: Option<String>,
    authority: AuthorityRef,
    #[serde(default)]
    extensions: Extensions,
    #[serde(default)]
    replaces: Vec<IdRef>,
    #[serde(default)]
    destinations: Vec<IdRef>,
    #[serde(flatten)]
    subject: SubjectRequest,
}

fn yes() -> bool {
    true
}

/// Lemur's upload body.
/// No `Debug`: it holds a private key.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadBody {
    owner: String,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    notify: bool,
    body: String,
    chain: Option<String>,
    private_key: Option<Zeroizing<String>>,
    #[serde(default)]
    replaces: Vec<IdRef>,
    #[serde(default)]
    destinations: Vec<IdRef>,
}

/// Query of the certificate list.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListQuery {
    page: Option<i64>,
    count: Option<i64>,
    filter: Option<String>,
    #[serde(default)]
    short: bool,
}

fn refuse_destinations(destinations: &[IdRef]) -> Result<(), Error> {
    if destinations.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(
            "destinations",
            "destination plugins are not available in this build yet",
        ))
    }
}

/// May the caller write? Read-only users may not (Lemur's StrictRolePermission).
fn require_writer(caller: &Caller) -> Result<(), Error> {
    if caller.has_role("read-only") && !caller.is_admin() {
        return Err(Error::Forbidden(
            "read-only users cannot change the inventory".into(),
        ));
    }
    Ok(())
}

/// May the caller issue from this authority? Admins and holders of one of its roles (Lemur's
/// AuthorityPermission; `global_cert_issuer` only skips domain authorization, not this).
async fn require_issuer(
    app: &crate::app::App,
    caller: &Caller,
    authority_id: i64,
) -> Result<(), Error> {
    if caller.is_admin() {
        return Ok(());
    }
    let roles = app.store.authority_roles(authority_id).await?;
    if roles.iter().any(|role| caller.has_role(&role.name)) {
        return Ok(());
    }
    Err(Error::Forbidden(
        "you hold no role on this authority".into(),
    ))
}

/// Certificate-level permission (Lemur's CertificatePermission): admin, the owner, a holder of
/// the owner's role, or the creator.
fn require_certificate_access(caller: &Caller, record: &CertificateRecord) -> Result<(), Error> {
    if caller.is_admin()
        || caller.user.email == record.owner
        || caller.has_role(&record.owner)
        || record.user_id == Some(caller.user.id)
    {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "only the certificate's owner, its creator or an administrator may do this".into(),
        ))
    }
}

/// Issues a certificate.
pub async fn create(
    State(app): AppState,
    caller: Caller,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Json<Value>, ApiError> {
    require_writer(&caller)?;
    refuse_destinations(&body.destinations)?;
    let authority_id = match (body.authority.id, &body.authority.name) {
        (Some(id), _) => id,
        (None, Some(name)) => app.store.authority_by_name(name).await?.id,
        (None, None) => return Err(Error::invalid("authority", "give its id or name").into()),
    };
    require_issuer(&app, &caller, authority_id).await?;
    let (not_before, not_after) = validity(
        body.validity_start.as_deref(),
        body.validity_end.as_deref(),
        body.validity_years,
        app.clock.unix(),
    )?;
    let key = match (&body.csr, &body.key_type) {
        (Some(_), _) => lemur_hsm::KeyAlgorithm::EcP256,
        (None, Some(key_type)) => ca::x509::algorithm_for(key_type)?,
        (None, None) => lemur_hsm::KeyAlgorithm::EcP256,
    };
    let request = IssueRequest {
        authority_id,
        owner: body.owner,
        description: body.description,
        notify: body.notify,
        rotation: body.rotation,
        common_name: body.common_name.trim().to_owned(),
        alt_names: body.extensions.alt_names()?,
        not_before,
        not_after,
        csr: body.csr,
        key,
        subject: body.subject.fields()?,
        replaces: replaceable(&app, &caller, &body.replaces).await?,
    };
    let id = ca::issue_certificate(&app, caller.actor(), request).await?;
    Ok(Json(
        views::certificate(&app, &app.store.certificate(id).await?, false).await?,
    ))
}

/// The ids in `replaces`, each checked to exist and to be the caller's to replace (Lemur's
/// `replaces` hijacking advisory).
async fn replaceable(
    app: &crate::app::App,
    caller: &Caller,
    replaces: &[IdRef],
) -> Result<Vec<i64>, Error> {
    let mut ids = Vec::with_capacity(replaces.len());
    for reference in replaces {
        let record = app.store.certificate(reference.id).await.map_err(|_| {
            Error::invalid(
                "replaces",
                format!("certificate {} does not exist", reference.id),
            )
        })?;
        require_certificate_access(caller, &record).map_err(|_| {
            Error::invalid(
                "replaces",
                format!("you may not replace certificate {}", reference.id),
            )
        })?;
        ids.push(record.id);
    }
    Ok(ids)
}

/// Imports a certificate.
pub async fn upload(
    State(app): AppState,
    caller: Caller,
    JsonBody(body): JsonBody<UploadBody>,
) -> Result<Json<Value>, ApiError> {
    require_writer(&caller)?;
    refuse_destinations(&body.destinations)?;
    let request = UploadRequest {
        owner: body.owner,
        description: body.description,
        notify: body.notify,
        body: body.body,
        chain: body.chain,
        private_key: body.private_key,
        replaces: replaceable(&app, &caller, &body.replaces).await?,
    };
    let id = ca::upload_certificate(&app, caller.actor(), request).await?;
    Ok(Json(
        views::certificate(&app, &app.store.certificate(id).await?, false).await?,
    ))
}

/// One certificate.
pub async fn get(
    State(app): AppState,
    _caller: Caller,
    IdPath(id): IdPath,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        views::certificate(&app, &app.store.certificate(id).await?, false).await?,
    ))
}

/// A page of certificates; `filter=cn;value` (also name, owner, serial, authority).
pub async fn list(
    State(app): AppState,
    _caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (page, count) = Paging {
        page: query.page,
        count: query.count,
    }
    .checked()?;
    let filter = match query.filter.as_deref().map(|f| f.split_once(';')) {
        None => CertificateFilter::All,
        Some(Some(("cn", value))) => CertificateFilter::Cn(value.to_owned()),
        Some(Some(("name", value))) => CertificateFilter::Name(value.to_owned()),
        Some(Some(("owner", value))) => CertificateFilter::Owner(value.to_owned()),
        Some(Some(("serial", value))) => CertificateFilter::Serial(value.to_owned()),
        Some(Some(("authority", value))) => CertificateFilter::Authority(
            value
                .parse()
                .map_err(|_| Error::invalid("filter", "authority takes an id"))?,
        ),
        Some(_) => {
            return Err(Error::invalid(
                "filter",
                "use field;value with field one of cn, name, owner, serial, authority",
            )
            .into());
        }
    };
    let (records, total) = app.store.certificates(&filter, page, count).await?;
    let mut items = Vec::with_capacity(records.len());
    for record in &records {
        items.push(views::certificate(&app, record, query.short).await?);
    }
    Ok(Json(json!({ "items": items, "total": total })))
}

/// The private key, unsealed by the HSM, with no-cache headers; every view is audited.
pub async fn key(
    State(app): AppState,
    caller: Caller,
    IdPath(id): IdPath,
) -> Result<impl IntoResponse, ApiError> {
    let record = app.store.certificate(id).await?;
    require_certificate_access(&caller, &record)?;
    let key = ca::private_key_pem(&app, &record, caller.actor()).await?;
    Ok((
        [
            (
                header::CACHE_CONTROL,
                "no-store, no-cache, must-revalidate, private",
            ),
            (header::PRAGMA, "no-cache"),
        ],
        Json(json!({ "key": key.as_str() })),
    ))
}
