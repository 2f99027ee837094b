//! `GET /crl/{name}` (or `{name}.crl`): an authority's certificate revocation list, DER, for
//! relying parties; no sign-in (the bundled nginx serves it over plain HTTP too).

use crate::error::ApiError;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use lemur_core::App;
use std::sync::Arc;

/// How long a client may keep a CRL before asking again. A revocation this daemon records is
/// listed from the next request on; one another daemon records, once this daemon's copy is an
/// hour old (`lemur_core::crl::REFRESH_SECS`).
const CLIENT_CACHE: &str = "public, max-age=300";

/// The CRL of the authority the path names.
pub async fn serve(
    State(app): State<Arc<App>>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let name = file.strip_suffix(".crl").unwrap_or(&file);
    let der = lemur_core::crl::current(&app, name).await?;
    let mut response = der.as_ref().clone().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pkix-crl"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CLIENT_CACHE),
    );
    Ok(response)
}
