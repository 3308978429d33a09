//! Requests and CLI runs made with a token other than the admin's (tests/tokens.rs).

use std::process::{Command, Output};
use std::time::Duration;

use super::{Answer, Server, exchange};

impl Server {
    /// One API request with `Authorization: Bearer <token>` (or `extra` header lines alone
    /// when `token` is empty) and a JSON body.
    pub fn api_as(
        &self,
        token: &str,
        method: &str,
        path: &str,
        extra: &str,
        body: Option<&str>,
    ) -> Answer {
        let body = body.unwrap_or("");
        let auth = if token.is_empty() {
            String::new()
        } else {
            format!("Authorization: Bearer {token}\r\n")
        };
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}{extra}\
             Content-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
            port = self.api_port,
            len = body.len()
        );
        exchange(self.api_port, head.as_bytes(), Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// The CLI as a CI job runs it: `HOIST_TOKEN=<token>` and no access to the server's data
    /// dir (so the admin token's file cannot stand in).
    pub fn hoist_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_hoist"))
            .args(args)
            .env("HOIST_API", format!("http://127.0.0.1:{}", self.api_port))
            .env("HOIST_TOKEN", token)
            .env("HOIST_DATA_DIR", "/nonexistent")
            .output()
            .expect("run hoist")
    }
}
