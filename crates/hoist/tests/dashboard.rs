//! The dashboard in a real browser: starts a real `hoist server` (which serves the embedded
//! `ui/dist` at `/` of its API listener) and runs the browser suite, `ui/e2e/*.test.ts`, with
//! Node's test runner; the suite drives Debian's chromium with playwright-core through a
//! person's first session (sign in, Manual Deploy of examples/flask-hello, env, redeploy,
//! rollback, logs, delete) and the sign-in rules. Screenshots and the suite's output land in
//! `target/e2e-artifacts/`.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The whole suite's bound: two builds of flask-hello (pip install) on a busy 2-core machine
/// are most of it.
const SUITE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

fn chromium() -> PathBuf {
    std::env::var_os("HOIST_E2E_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// The suite's files, in a stable order.
fn suite_files(e2e: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(e2e)
        .unwrap_or_else(|e| panic!("{}: {e}", e2e.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".test.ts"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_dashboard_works_in_a_browser() {
    let ui = workspace().join("ui");
    assert!(
        ui.join("node_modules/playwright-core").is_dir() && ui.join("node_modules/tsx").is_dir(),
        "ui/node_modules is not installed: run scripts/setup.sh (or cd ui && npm ci)"
    );
    assert!(
        chromium().exists(),
        "{} is missing: scripts/test.sh installs Debian's chromium",
        chromium().display()
    );
    let files = suite_files(&ui.join("e2e"));
    assert!(!files.is_empty(), "no ui/e2e/*.test.ts");

    let server = Server::start("dashboard", &[]);
    // The page itself, before a browser is involved: a suite failing on a missing dashboard
    // should say so.
    let (status, body) = http(server.api_port, "127.0.0.1", "/").expect("GET /");
    assert!(
        status == 200 && body.contains("<div id="),
        "GET / of the API listener is not the dashboard ({status}): {body:.300}; is ui/dist built (scripts/setup.sh)?"
    );

    let artifacts = workspace().join("target/e2e-artifacts");
    let _ = std::fs::remove_dir_all(&artifacts);
    std::fs::create_dir_all(&artifacts).expect("artefact dir");
    // The suite's output goes to a file, read once node has exited: no pipe to block on.
    let output_path = artifacts.join("suite-output.txt");
    let output = std::fs::File::create(&output_path).expect("suite output file");
    let node = std::env::var_os("HOIST_E2E_NODE").unwrap_or_else(|| "node".into());
    let mut child = Command::new(&node)
        .args(["--import", "tsx", "--test", "--test-reporter=spec"])
        .args(&files)
        .current_dir(&ui)
        .env(
            "HOIST_E2E_API",
            format!("http://127.0.0.1:{}", server.api_port),
        )
        .env("HOIST_E2E_GATEWAY_PORT", server.gw_port.to_string())
        .env("HOIST_E2E_TOKEN", server.token())
        .env(
            "HOIST_E2E_APP",
            example("flask-hello")
                .canonicalize()
                .expect("examples/flask-hello"),
        )
        .env("HOIST_E2E_ARTIFACTS", &artifacts)
        .env("HOIST_E2E_CHROMIUM", chromium())
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(output.try_clone().expect("suite output file"))
        .stderr(output)
        .spawn()
        .unwrap_or_else(|e| panic!("run {node:?} (Node.js; scripts/setup.sh installs it): {e}"));
    let status = wait_exit(&mut child, SUITE_TIMEOUT);
    let text = std::fs::read_to_string(&output_path).unwrap_or_default();
    println!("{text}");
    println!(
        "screenshots and output: {}; server log: {}",
        artifacts.display(),
        server.log_file().display()
    );
    match status {
        Some(s) => assert!(
            s.success(),
            "the browser suite failed ({s}); see above and {}",
            artifacts.display()
        ),
        None => {
            panic!("the browser suite did not finish within {SUITE_TIMEOUT:?} (killed); see above")
        }
    }
}
