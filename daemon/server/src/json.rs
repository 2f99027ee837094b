//! A JSON body extractor whose errors name the offending field (`reasons.<field>`), where axum's
//! own answers with plain text.

use super::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use lemur_core::App;
use lemur_core::Error;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use std::time::Duration;

/// The request body, parsed as `T`.
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<App>> for JsonBody<T> {
    type Rejection = ApiError;

    /// Reads the body within `server.request_timeout_secs` (408 after, so a client that sends
    /// slowly cannot hold a request open); the handler's own work is never cut short.
    async fn from_request(request: Request, app: &Arc<App>) -> Result<Self, Self::Rejection> {
        let limit = Duration::from_secs(app.config.server.request_timeout_secs.max(1));
        let bytes = tokio::time::timeout(limit, Bytes::from_request(request, app))
            .await
            .map_err(|_| Error::RequestTimeout)?
            .map_err(|e| Error::invalid("body", e.body_text()))?;
        parse(&bytes).map(JsonBody).map_err(ApiError::from)
    }
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

/// The path of the first string in `value` that holds a NUL character: PostgreSQL cannot store
/// one, X.509 names must not contain one, and no field has a use for it.
fn nul_at(value: &serde_json::Value, path: &str) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains('\0') => Some(if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_at(item, &format!("{path}[{index}]"))),
        Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            nul_at(item, &inner)
        }),
        _ => None,
    }
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
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(field) = nul_at(&value, "")
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
        assert!(
            field_and_reason(r#"{"owner": "a", "extra": 1}"#)
                .1
                .contains("unknown field `extra`")
        );
    }
}
