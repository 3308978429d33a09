//! The repository's config files as a deploy reads them: hoist.toml refuses what it does not
//! know, leapcell.yaml (another platform's file) deploys with a warning for what Hoist ignores.

mod common;

use common::{Server, git, git_repo, probe_app};

/// The probe app with its hoist.toml replaced by `files`, committed.
fn probe_with(name: &str, remove_toml: bool, files: &[(&str, &str)]) -> std::path::PathBuf {
    let repo = git_repo(&probe_app(), name);
    if remove_toml {
        std::fs::remove_file(repo.join("hoist.toml")).unwrap();
    }
    for (file, text) in files {
        std::fs::write(repo.join(file), text).unwrap();
    }
    git(&repo, &["add", "-A"]);
    common::commit_all(&repo, "config");
    repo
}

#[test]
fn leapcell_yaml_keys_hoist_does_not_use_deploy_with_a_warning_in_the_build_log() {
    let server = Server::start("leapcell-warn", &[]);
    let yaml = "runtime: python3.11\nstartCommand: python3 app.py\nmemory: 128mb\n\
                region: us-east-1\nserviceName: probe\n";
    let repo = probe_with("leapcell-warn", true, &[("leapcell.yaml", yaml)]);
    server.deploy_ok(&[repo.to_str().unwrap(), "--name", "leap"]);
    let (status, body) = server.get("leap", "/");
    assert_eq!(status, 200, "{body}");
    let build = server.hoist_ok(&["logs", "leap", "--build"]);
    for key in ["region", "serviceName"] {
        let warning = format!("warning: leapcell.yaml: key `{key}` is not used by Hoist; ignored");
        assert!(build.contains(&warning), "no {warning:?} in:\n{build}");
    }
}

#[test]
fn an_unknown_hoist_toml_key_fails_the_deploy_naming_the_nearest_known_key() {
    let server = Server::start("toml-typo", &[]);
    let toml = "runtime = \"python\"\nstart = \"python3 app.py\"\nmemory = 128\nmin_instance = 1\n";
    let repo = probe_with("toml-typo", false, &[("hoist.toml", toml)]);
    let err = server.deploy_err(&[repo.to_str().unwrap(), "--name", "typo"]);
    assert!(
        err.contains("hoist.toml: unknown key `min_instance`: did you mean `min_instances`?"),
        "{err}"
    );
    // Refused before the build: the deployment failed without a build step.
    let service = server.service("typo");
    let deployment = &service["deployments"][0];
    assert_eq!(deployment["state"], "failed", "{service}");
    let steps: Vec<&str> = deployment["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert!(!steps.contains(&"building"), "{steps:?}");
}
