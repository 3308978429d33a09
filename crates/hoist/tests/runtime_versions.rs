//! Runtime versions end to end, on one shared server: a project's pin file chooses the
//! version its app runs on (the app reports it over HTTP), the deploy says which and why,
//! a version Hoist does not have is refused with the list, and `hoist runtimes` lists them.
//! The first run builds debian@13, node@22, python@3.13 and python+node in the shared runtime
//! cache (about 4 minutes); later runs take seconds.

mod common;

use std::time::Duration;

use common::runtimes::{NODE_SERVER, PYTHON_SERVER, app_repo};
use common::{shared_server, unique};

const BUILD: Duration = Duration::from_secs(600);

/// A service name unique to this run, short and without dashes, as these tests have always
/// named their services.
fn short_name(prefix: &str) -> String {
    unique(prefix).replace('-', "").chars().take(20).collect()
}

#[test]
fn a_node_app_pinned_by_nvmrc_runs_on_node_22_with_npm_on_path() {
    let server = shared_server();
    let name = short_name("nvmrc");
    let repo = app_repo(
        &name,
        &[
            (".nvmrc", "22\n"),
            (
                "package.json",
                r#"{"name":"pinned","version":"1.0.0","private":true,"dependencies":{"ms":"2.1.3"}}"#,
            ),
            ("server.js", NODE_SERVER),
            (
                "hoist.toml",
                "build = \"npm install --no-audit && echo npm $(npm --version) npx $(npx --version) > built.txt\"\nstart = \"node server.js\"\nmemory = 256\n",
            ),
        ],
    );
    let out = server.deploy_ok(&[repo.to_str().unwrap(), "--name", &name]);
    let log = server.hoist_ok(&["logs", &name, "--build"]);
    assert!(
        log.contains("==> runtime node@22 (22.") && log.contains("from .nvmrc \"22\""),
        "the build log does not say which node and why:\n{log}\n{out}"
    );
    let body = server.wait_for(&name, "/", "\"node\":\"v22.", BUILD);
    let answer: serde_json::Value = serde_json::from_str(&body).expect("the app's JSON");
    let built = answer["built"].as_str().unwrap_or_default();
    assert!(
        built.starts_with("npm 10.") && built.contains(" npx 10."),
        "{answer}"
    );
    // `npm install` reached the registry (through the host's CA bundle) and node loads it.
    assert_eq!(answer["dep"], "1m", "{answer}");
    // The deployment records the exact version, and status shows it.
    let service = server.service(&name);
    let version = service["deployments"][0]["runtime_version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let node = answer["node"].as_str().unwrap_or_default();
    assert_eq!(format!("v{version}"), node, "{service}");
    let status = server.status(&name);
    assert!(
        status.contains(&format!("runtime  node@22 ({version})")),
        "{status}"
    );
    let list: serde_json::Value =
        serde_json::from_str(&server.hoist_ok(&["runtimes", "--json"])).expect("JSON");
    let node22 = list
        .as_array()
        .and_then(|l| l.iter().find(|r| r["name"] == "node@22"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(node22["installed"], true, "{node22}");
    assert_eq!(
        node22["version"].as_str(),
        Some(version.as_str()),
        "{node22}"
    );
    assert!(
        node22["size_bytes"].as_u64().unwrap_or(0) > 10_000_000,
        "{node22}"
    );
    // Without the pin, a redeploy keeps the version the service runs on (not the default
    // node@24): the app is not moved to another Node.js by itself.
    std::fs::remove_file(repo.join(".nvmrc")).expect("removing .nvmrc");
    common::git(&repo, &["add", "-A"]);
    common::commit_all(&repo, "no pin");
    server.deploy_ok(&[repo.to_str().unwrap(), "--name", &name]);
    let log = server.hoist_ok(&["logs", &name, "--build"]);
    assert!(
        log.contains("runtime node@22 (22.")
            && log.contains("kept from the service's current deployment"),
        "{log}"
    );
    server.wait_for(&name, "/", "\"node\":\"v22.", BUILD);
}

#[test]
fn a_python_app_pinned_by_python_version_runs_on_python_3_13() {
    let server = shared_server();
    let name = short_name("pyver");
    let repo = app_repo(
        &name,
        &[
            (".python-version", "3.13\n"),
            ("app.py", PYTHON_SERVER),
            (
                "hoist.toml",
                "runtime = \"python\"\nstart = \"python3 app.py\"\nmemory = 128\n",
            ),
        ],
    );
    server.deploy_ok(&[repo.to_str().unwrap(), "--name", &name]);
    let body = server.wait_for(&name, "/", "\"python\": [3, 13,", BUILD);
    assert!(body.contains("\"python\": [3, 13,"), "{body}");
    let log = server.hoist_ok(&["logs", &name, "--build"]);
    assert!(
        log.contains("==> runtime python@3.13 (3.13.")
            && log.contains("from .python-version \"3.13\""),
        "{log}"
    );
}

#[test]
fn python_plus_node_has_both_for_a_frontend_build() {
    let server = shared_server();
    let name = short_name("pyjs");
    let repo = app_repo(
        &name,
        &[
            ("app.py", PYTHON_SERVER),
            (
                "hoist.toml",
                "runtime = \"python+node\"\nbuild = \"echo node $(node --version) npm $(npm --version) > built.txt\"\nstart = \"python3 app.py\"\nmemory = 128\n",
            ),
        ],
    );
    server.deploy_ok(&[repo.to_str().unwrap(), "--name", &name]);
    let body = server.wait_for(&name, "/", "\"python\": [3, 13,", BUILD);
    assert!(body.contains("node v24."), "{body}");
    assert!(body.contains(" npm 11."), "{body}");
}

#[test]
fn unknown_versions_and_unsatisfiable_pins_are_refused_with_the_list() {
    let server = shared_server();
    let name = short_name("badver");
    let repo = app_repo(
        &name,
        &[
            (".nvmrc", "17\n"),
            ("package.json", r#"{"name":"old"}"#),
            ("server.js", NODE_SERVER),
            ("hoist.toml", "start = \"node server.js\"\n"),
        ],
    );
    let path = repo.to_str().unwrap();
    // The CLI refuses before anything is sent: no service comes to exist.
    let err = server.deploy_err(&[path, "--name", &name, "--runtime", "node@17"]);
    assert!(err.contains("invalid runtime 'node@17'"), "{err}");
    assert!(
        err.contains("node@20 (end of life)") && err.contains("node@24 (default)"),
        "{err}"
    );
    let (status, _) = server.api("GET", &format!("/v1/services/{name}"), None);
    assert_eq!(status, 404);
    // The API refuses it too, naming the field.
    for bad in ["python@2.7", "go@9", "node@17"] {
        let body = format!(r#"{{"source":"{path}","name":"{name}","runtime":"{bad}"}}"#);
        let (status, answer) = server.api("POST", "/v1/deployments", Some(&body));
        assert_eq!(status, 400, "{bad}: {answer}");
        assert_eq!(answer["field"], "runtime", "{answer}");
        let message = answer["error"].as_str().unwrap_or_default();
        assert!(message.contains("available: "), "{message}");
    }
    // A pin no version satisfies fails the deploy, naming the file, the pin and the list.
    let err = server.deploy_err(&[path, "--name", &name]);
    assert!(
        err.contains(".nvmrc: pins node \"17\", which no available version satisfies")
            && err.contains("node@22, node@24 (default)"),
        "{err}"
    );
}

#[test]
fn hoist_runtimes_lists_every_version_with_source_support_and_default() {
    let server = shared_server();
    let list: serde_json::Value =
        serde_json::from_str(&server.hoist_ok(&["runtimes", "--json"])).expect("JSON");
    let list = list.as_array().cloned().unwrap_or_default();
    let find = |n: &str| {
        list.iter()
            .find(|r| r["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} is not listed: {list:?}"))
    };
    for n in [
        "python@3.11",
        "python@3.13",
        "node@18",
        "node@20",
        "node@22",
        "node@24",
        "go@1.19",
        "go@1.24",
        "rust",
        "debian@12",
        "debian@13",
        "python+node",
    ] {
        find(n);
    }
    assert_eq!(find("node@20")["eol"], true);
    assert_eq!(find("node@18")["eol"], true);
    assert_eq!(find("node@24")["eol"], false);
    assert_eq!(find("node@24")["default"], true);
    assert_eq!(find("node@22")["default"], false);
    assert_eq!(find("python@3.13")["source"], "Debian 13 (trixie)");
    assert_eq!(find("node@18")["source"], "Debian 12 (bookworm)");
    assert!(
        find("node@22")["source"]
            .as_str()
            .unwrap_or_default()
            .starts_with("npm registry"),
    );
    let table = server.hoist_ok(&["runtimes"]);
    for needle in [
        "node@20",
        "end of life since 2026-04-30",
        "default node",
        "SOURCE",
    ] {
        assert!(table.contains(needle), "{needle:?} not in:\n{table}");
    }
}
