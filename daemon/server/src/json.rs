//! A JSON body extractor whose errors name the offending field (`reasons.<field>`), where axum's
//! own answers with plain text.

use super::ApiError;
use axum::extract::{FromRequest, Request};
use http_body_util::BodyExt;
use lemur_core::App;
use lemur_core::Error;
use lemur_core::model::IdempotencyKey;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// The request body, parsed as `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let body = read_in_time(request, app).await?;
        parse(&body).map(JsonBody).map_err(ApiError::from)
    }
}

/// The request body parsed as `T`, or `T::default()` when it is empty (a body Lemur makes
/// optional, as on `DELETE /pending_certificates/{id}`).
pub struct OptionalJsonBody<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<Arc<App>> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let body = read_in_time(request, app).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        parse(&body).map(OptionalJsonBody).map_err(ApiError::from)
    }
}

/// Reads the body within `server.request_timeout_secs` (408 after, so a client that sends
/// slowly cannot hold a request open); the handler's own work is never cut short.
async fn read_in_time(request: Request, app: &Arc<App>) -> Result<Zeroizing<Vec<u8>>, ApiError> {
    let limit = Duration::from_secs(app.config.server.request_timeout_secs.max(1));
    Ok(tokio::time::timeout(limit, read_body(request))
        .await
        .map_err(|_| Error::RequestTimeout)??)
}

/// A request body parsed as `T`, and the client's `Idempotency-Key` with the fingerprint of
/// the body it came with (SHA-256 of the bytes as sent: a retry sends the same bytes).
pub struct IdempotentJson<T>(pub T, pub Option<IdempotencyKey>);

/// The longest `Idempotency-Key` accepted: room for any UUID or ULID with a prefix.
const MAX_IDEMPOTENCY_KEY: usize = 255;

impl<T: DeserializeOwned> FromRequest<Arc<App>> for IdempotentJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let key = idempotency_key(request.headers())?;
        let body = read_in_time(request, app).await?;
        let key = key.map(|key| IdempotencyKey {
            key,
            fingerprint: lemur_core::ca::x509::sha256_hex(&body),
        });
        let parsed = parse(&body)?;
        Ok(IdempotentJson(parsed, key))
    }
}

/// The `Idempotency-Key` header, if sent: 1 to 255 visible ASCII characters (quotes, as the
/// draft's structured-field string has them, are taken off).
fn idempotency_key(headers: &axum::http::HeaderMap) -> Result<Option<String>, Error> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = || {
        Error::invalid(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters, such as a UUID"),
        )
    };
    let text = value.to_str().map_err(|_| invalid())?.trim();
    let key = text
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(text);
    if key.is_empty()
        || key.len() > MAX_IDEMPOTENCY_KEY
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid());
    }
    Ok(Some(key.to_owned()))
}

/// The largest request body read (as axum's default).
const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Room reserved up front from `Content-Length`, at most: a client that only declares a large
/// body cannot make the daemon commit (and later wipe) much memory.
const RESERVED_BODY_BYTES: usize = 64 * 1024;

/// The whole body in zeroizing memory, since bodies carry passwords and private keys: reserved
/// from `Content-Length` (up to [`RESERVED_BODY_BYTES`]), and when it must grow, moved to a
/// larger buffer and the old one wiped (never reallocated in place, which would free an unwiped
/// copy). The chunks hyper hands over share its read buffer, which is beyond our reach.
async fn read_body(request: Request) -> Result<Zeroizing<Vec<u8>>, Error> {
    let too_large = || Error::invalid("body", format!("is larger than {MAX_BODY_BYTES} bytes"));
    let declared = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    if declared > MAX_BODY_BYTES {
        return Err(too_large());
    }
    let mut body = Zeroizing::new(Vec::with_capacity(declared.min(RESERVED_BODY_BYTES)));
    let mut stream = request.into_body();
    while let Some(frame) = stream.frame().await {
        let frame = frame.map_err(|e| Error::invalid("body", e.to_string()))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        if body.capacity() - body.len() < chunk.len() {
            let room = (body.len() + chunk.len()).max(body.capacity() * 2);
            let mut larger = Zeroizing::new(Vec::with_capacity(room.min(MAX_BODY_BYTES)));
            larger.extend_from_slice(&body);
            body = larger;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Query parameters parsed as `T`; a bad parameter is a 400 with a JSON body like any other.
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if query.to_ascii_lowercase().contains("%00") {
            return Err(Error::invalid("query", "contains a NUL character").into());
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let reason = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                // axum names the parameter as `name: problem`.
                let (field, reason) = match reason.split_once(": ") {
                    Some((field, problem)) if !field.is_empty() && !field.contains(' ') => {
                        (field, problem)
                    }
                    _ => ("query", reason),
                };
                ApiError::from(Error::invalid(field, reason.to_owned()))
            })
    }
}

/// The path of the first string in `raw` that holds a NUL character: PostgreSQL cannot store
/// one, X.509 names must not contain one, and no field has a use for it. Strings are looked at
/// in their raw JSON form, never unescaped, so no copy of a secret among them is made.
fn nul_at(raw: &RawValue, path: &str) -> Option<String> {
    let text = raw.get();
    match text.as_bytes().first()? {
        b'"' => escapes_nul(text).then(|| {
            if path.is_empty() {
                "body".to_owned()
            } else {
                path.to_owned()
            }
        }),
        b'[' => serde_json::from_str::<Vec<&RawValue>>(text)
            .ok()?
            .into_iter()
            .enumerate()
            .find_map(|(index, item)| nul_at(item, &format!("{path}[{index}]"))),
        b'{' => serde_json::from_str::<BTreeMap<String, &RawValue>>(text)
            .ok()?
            .into_iter()
            .find_map(|(key, item)| {
                let inner = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                nul_at(item, &inner)
            }),
        _ => None,
    }
}

/// Whether the JSON string literal `literal` holds the escape `\u0000` (and not, say, an
/// escaped backslash followed by `u0000`).
fn escapes_nul(literal: &str) -> bool {
    let mut bytes = literal.bytes();
    while let Some(byte) = bytes.next() {
        if byte == b'\\' {
            match bytes.next() {
                Some(b'u') if bytes.clone().take(4).eq(*b"0000") => return true,
                _ => {}
            }
        }
    }
    false
}

/// A numeric id from the route (`/certificates/{id}`); anything else is a 400 naming `id` with a
/// JSON body, where axum's `Path` answers in plain text.
pub struct IdPath(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| Error::invalid("id", rejection.body_text()))?;
        raw.parse()
            .map(IdPath)
            .map_err(|_| Error::invalid("id", format!("{raw:?} is not a number")).into())
    }
}

/// Parses `bytes`, turning a serde error into a validation error on the field it concerns.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    // JSON can only carry NUL escaped as \u0000; look for the field only when that text occurs,
    // so ordinary bodies are parsed once.
    if bytes.windows(6).any(|w| w == b"\\u0000")
        && let Ok(raw) = serde_json::from_slice::<&RawValue>(bytes)
        && let Some(field) = nul_at(raw, "")
    {
        return Err(Error::invalid(&field, "contains a NUL character"));
    }
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned();
        let field = match message
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next())
        {
            Some(missing) if path == "." => missing.to_owned(),
            Some(missing) => format!("{path}.{missing}"),
            None if path == "." => "body".to_owned(),
            None => path,
        };
        let reason = if message.starts_with("missing field") {
            "is required".to_owned()
        } else {
            message
        };
        Error::invalid(&field, reason)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Request {
        #[allow(dead_code)]
        owner: String,
        #[allow(dead_code)]
        nested: Option<Nested>,
    }

    #[derive(Debug, Deserialize)]
    struct Nested {
        #[allow(dead_code)]
        count: u32,
    }

    fn field_and_reason(body: &str) -> (String, String) {
        match parse::<Request>(body.as_bytes()) {
            Err(Error::Validation { field, reason }) => (field, reason),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn read(
        chunks: &[&'static [u8]],
        declared: Option<usize>,
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        let chunks: Vec<_> = chunks
            .iter()
            .copied()
            .map(Ok::<_, std::io::Error>)
            .collect();
        let stream = futures_util::stream::iter(chunks);
        let mut request = axum::extract::Request::new(axum::body::Body::from_stream(stream));
        if let Some(length) = declared {
            request.headers_mut().insert(
                axum::http::header::CONTENT_LENGTH,
                axum::http::HeaderValue::from(length),
            );
        }
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(Error::io("runtime"))?
            .block_on(read_body(request))
    }

    #[test]
    fn bodies_are_read_whole_and_bounded() {
        let whole = read(&[b"{\"a\":", b" \"", b"b\"}"], None).unwrap_or_default();
        assert_eq!(&whole[..], b"{\"a\": \"b\"}");
        let declared = read(&[b"12", b"345"], Some(5)).unwrap_or_default();
        assert_eq!((&declared[..], declared.capacity()), (&b"12345"[..], 5));
        let big: &'static [u8] = Box::leak(vec![b' '; MAX_BODY_BYTES].into_boxed_slice());
        for declared in [None, Some(MAX_BODY_BYTES + 1)] {
            match read(&[big, b"x"], declared) {
                Err(Error::Validation { field, reason }) => {
                    assert_eq!(
                        (field.as_str(), reason.contains("larger than")),
                        ("body", true)
                    )
                }
                other => panic!(
                    "expected a validation error, got {:?}",
                    other.map(|b| b.len())
                ),
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            field_and_reason("{}"),
            ("owner".into(), "is required".into())
        );
        let (field, reason) = field_and_reason(r#"{"owner": "a", "nested": {"count": "x"}}"#);
        assert_eq!(field, "nested.count");
        assert!(reason.contains("invalid type"), "{reason}");
        assert_eq!(
            field_and_reason(r#"{"owner": "a", "nested": {}}"#).0,
            "nested.count"
        );
        assert_eq!(field_and_reason("not json").0, "body");
        assert_eq!(
            field_and_reason(r#"{"owner": "a", "nested": {"list": ["x", "\u0000"]}}"#),
            ("nested.list[1]".into(), "contains a NUL character".into())
        );
        assert_eq!(
            field_and_reason(r#"{"owner": "a\u0000"}"#),
            ("owner".into(), "contains a NUL character".into())
        );
        // An escaped backslash before `u0000` is no NUL: the body is parsed as usual.
        assert!(parse::<Request>(r#"{"owner": "a\\u0000"}"#.as_bytes()).is_ok());
        assert!(
            field_and_reason(r#"{"owner": "a", "extra": 1}"#)
                .1
                .contains("unknown field `extra`")
        );
    }
}
