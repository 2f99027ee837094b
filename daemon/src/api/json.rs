//! A JSON body extractor whose errors name the offending field (`reasons.<field>`), where axum's
//! own answers with plain text.

use super::ApiError;
use crate::error::Error;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

/// The request body, parsed as `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
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
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let reason = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                ApiError::from(Error::invalid("query", reason.to_owned()))
            })
    }
}

/// Parses `bytes`, turning a serde error into a validation error on the field it concerns.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
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
        assert!(
            field_and_reason(r#"{"owner": "a", "extra": 1}"#)
                .1
                .contains("unknown field `extra`")
        );
    }
}
