//! Body and query extractors whose rejections are the API's own: `400` with a JSON
//! `{"error"}` naming the field (or parameter) and the rule. axum's `Json` and `Query` answer
//! plain text, and `Query`'s message does not name the parameter.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body decoded with [`hoist_api_types::from_json`].
pub(crate) struct ApiJson<T>(pub T);

/// As [`ApiJson`], for an endpoint whose body may be left out (an empty body is `None`).
pub(crate) struct OptionalJson<T>(pub Option<T>);

async fn body_bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("application/json") || v.ends_with("+json")
        });
    let bytes = Bytes::from_request(req, state)
        .await
        .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    if json == Some(false) || (json.is_none() && !bytes.is_empty()) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be JSON, sent with `Content-Type: application/json`",
        ));
    }
    Ok(bytes)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    hoist_api_types::from_json(bytes).map_err(|e| {
        let error = ApiError::bad_request(e.to_string());
        match top_field(&e.field) {
            Some(f) => error.with_field(f),
            None => error,
        }
    })
}

/// The body's own field a JSON path is in (`set.A` is about `set`, `env[2]` about `env`);
/// `None` for the body as a whole.
fn top_field(path: &str) -> Option<&str> {
    let top = path.split(['.', '[']).next().unwrap_or("");
    (!top.is_empty() && top != "?").then_some(top)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "the request needs a JSON body (see /openapi.json)",
            ));
        }
        decode(&bytes).map(ApiJson)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        decode(&bytes).map(|v| OptionalJson(Some(v)))
    }
}

/// Query parameters decoded with the parameter's name in the error.
pub(crate) struct ApiQuery<T>(pub T);

/// Decodes a query string (without the `?`) as a `T`.
pub(crate) fn decode_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let message = e.inner().to_string();
        let param = e.path().to_string();
        if message.starts_with("unknown field") {
            ApiError::bad_request(format!(
                "invalid query: {}",
                message.replacen("unknown field", "unknown parameter", 1)
            ))
        } else if param == "." {
            ApiError::bad_request(format!("invalid query: {message}"))
        } else {
            ApiError::bad_request(format!("invalid query parameter `{param}`: {message}"))
                .with_field(param)
        }
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        decode_query(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use hoist_api_types::{EnvChange, LogsQuery, RollbackRequest, UsageQuery};

    use super::*;

    fn request(content_type: Option<&str>, body: &str) -> Request {
        let mut b = axum::http::Request::builder().method("POST").uri("/x");
        if let Some(t) = content_type {
            b = b.header(header::CONTENT_TYPE, t);
        }
        b.body(Body::from(body.to_string())).unwrap()
    }

    #[test]
    fn a_bad_query_parameter_is_named_with_its_rule() {
        let e = decode_query::<LogsQuery>("tail=many").err().unwrap();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            e.error,
            "invalid query parameter `tail`: invalid digit found in string"
        );
        assert_eq!(e.field.as_deref(), Some("tail"));
        let e = decode_query::<LogsQuery>("format=xml").err().unwrap();
        assert_eq!(
            e.error,
            "invalid query parameter `format`: unknown variant `xml`, expected `ndjson` or `sse`"
        );
        let e = decode_query::<UsageQuery>("dayz=3").err().unwrap();
        assert!(
            e.error
                .starts_with("invalid query: unknown parameter `dayz`, expected `days`"),
            "{}",
            e.error
        );
        let q = decode_query::<LogsQuery>("follow=true&stream=stdout,access&tail=5").unwrap();
        assert!(q.follow);
        assert_eq!(q.tail, Some(5));
    }

    #[tokio::test]
    async fn a_bad_body_gets_a_json_400_naming_the_field() {
        let req = request(Some("application/json"), r#"{"set": {}, "unsett": []}"#);
        let e = ApiJson::<EnvChange>::from_request(req, &())
            .await
            .err()
            .unwrap();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.error.starts_with(
                "invalid request body: unknown field `unsett`, expected `set` or `unset`"
            ),
            "{}",
            e.error
        );
        let req = request(Some("application/json"), r#"{"set": {"A": 1}}"#);
        let e = ApiJson::<EnvChange>::from_request(req, &())
            .await
            .err()
            .unwrap();
        assert_eq!(
            e.error,
            "invalid field `set.A`: invalid type: integer `1`, expected a string"
        );
        assert_eq!(e.field.as_deref(), Some("set"));
        let req = request(Some("text/plain"), "{}");
        let e = ApiJson::<EnvChange>::from_request(req, &())
            .await
            .err()
            .unwrap();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let req = request(Some("application/json"), "");
        let e = ApiJson::<EnvChange>::from_request(req, &())
            .await
            .err()
            .unwrap();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn an_optional_body_may_be_left_out_but_not_be_wrong() {
        let none = OptionalJson::<RollbackRequest>::from_request(request(None, ""), &())
            .await
            .ok()
            .unwrap();
        assert!(none.0.is_none());
        let req = request(Some("application/json"), r#"{"deployment": "d-1"}"#);
        let e = OptionalJson::<RollbackRequest>::from_request(req, &())
            .await
            .err()
            .unwrap();
        assert!(
            e.error.starts_with("invalid field `deployment`"),
            "{}",
            e.error
        );
    }
}
