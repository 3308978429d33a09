//! The HTTP client of the Hoist API that every subcommand but `server` uses.

use anyhow::{Context, anyhow, bail};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

pub(crate) struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    pub(crate) fn from_env() -> anyhow::Result<Api> {
        let base = std::env::var("HOIST_API").unwrap_or_else(|_| "http://127.0.0.1:7070".into());
        let token = match std::env::var("HOIST_TOKEN") {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let file = crate::default_data_dir().join("admin-token");
                std::fs::read_to_string(&file)
                    .with_context(|| {
                        format!(
                            "no API token: set HOIST_TOKEN, or HOIST_DATA_DIR to the server's data dir (could not read {})",
                            file.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        Ok(Api {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        })
    }

    /// The API's address as `HOIST_API` gives it (no trailing slash).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    pub(crate) fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
            // The server records the deploys the CLI starts as triggered by `cli`.
            .header("x-hoist-client", "cli")
    }

    /// Sends the request; an answer other than 2xx becomes an error whose text is the API's
    /// own message as it is (main prints it as `error: <message>`).
    pub(crate) async fn send(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let resp = rb.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the Hoist API at {} ({e}); is `hoist server` running?",
                self.base
            )
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        bail!("{}", error_message(status, &body))
    }

    /// Sends the request and reads the answer as `T`.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let resp = self.send(rb).await?;
        let url = resp.url().path().to_string();
        let body = resp
            .bytes()
            .await
            .with_context(|| format!("reading the answer to {url}"))?;
        serde_json::from_slice(&body)
            .with_context(|| format!("the API's answer to {url} is not what this CLI expects"))
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.call(self.req(reqwest::Method::GET, path)).await
    }

    /// Calls `each` for every JSON line of an NDJSON response until it returns false (or an
    /// error) or the stream ends.
    pub(crate) async fn ndjson<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
        mut each: impl FnMut(T) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let resp = self.send(rb).await?;
        let mut lines = NdjsonLines::new(resp);
        while let Some(item) = lines.next::<T>().await? {
            if !each(item)? {
                break;
            }
        }
        Ok(())
    }
}

/// The `error` of the API's JSON error body, or the HTTP status when there is none.
fn error_message(status: reqwest::StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<hoist_api_types::ApiErrorBody>(body) {
        Ok(e) => e.error,
        Err(_) => format!("the API answered {status}"),
    }
}

/// The items of an NDJSON response, one at a time (for streams that are followed while other
/// things happen, as a deploy's progress).
pub(crate) struct NdjsonLines {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl NdjsonLines {
    pub(crate) fn new(resp: reqwest::Response) -> NdjsonLines {
        NdjsonLines {
            stream: resp.bytes_stream().boxed(),
            buf: Vec::new(),
        }
    }

    /// The next item, or None at the end of the stream. Lines that are not a `T` (a kind of
    /// item newer than this CLI) are skipped.
    pub(crate) async fn next<T: DeserializeOwned>(&mut self) -> anyhow::Result<Option<T>> {
        loop {
            while let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                if let Ok(v) = serde_json::from_slice::<T>(&line) {
                    return Ok(Some(v));
                }
            }
            match self.stream.next().await {
                Some(chunk) => self
                    .buf
                    .extend_from_slice(&chunk.context("reading the stream from the API")?),
                None => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_error_is_its_message_as_it_is() {
        let bad = reqwest::StatusCode::BAD_REQUEST;
        let body = br#"{"error":"invalid field `idle_freeze`: add a unit, e.g. 5s"}"#;
        assert_eq!(
            error_message(bad, body),
            "invalid field `idle_freeze`: add a unit, e.g. 5s"
        );
        assert_eq!(
            error_message(reqwest::StatusCode::BAD_GATEWAY, b"<html>proxy</html>"),
            "the API answered 502 Bad Gateway"
        );
    }
}
