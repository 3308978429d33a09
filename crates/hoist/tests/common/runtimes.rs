//! Helpers of `runtime_versions.rs`: small apps written file by file into a fresh repository.

use std::path::PathBuf;

use super::{commit_all, git, scratch};

/// A git repository on `main` holding `files` (path, contents), committed.
pub fn app_repo(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let repo = scratch(&format!("repo-{name}"));
    for (path, text) in files {
        std::fs::write(repo.join(path), text).expect("writing an app file");
    }
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    commit_all(&repo, "init");
    repo
}

/// A Node.js app that answers with `process.version`, what the build left in `built.txt` and,
/// when `npm install` put it there, what the `ms` package makes of a minute.
pub const NODE_SERVER: &str = r#"const http = require("http");
const fs = require("fs");
const built = fs.existsSync("built.txt") ? fs.readFileSync("built.txt", "utf8").trim() : "";
let dep = "";
try { dep = require("ms")(60000); } catch (e) { dep = "missing"; }
http.createServer((req, res) => {
  res.end(JSON.stringify({ node: process.version, built, dep }));
}).listen(Number(process.env.PORT || 8080), "0.0.0.0");
"#;

/// A Python app that answers with `sys.version_info` and what the build left in `built.txt`.
pub const PYTHON_SERVER: &str = r#"import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

BUILT = open("built.txt").read().strip() if os.path.exists("built.txt") else ""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"python": list(sys.version_info[:3]), "built": BUILT}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
"#;
