//! The API's contract, checked against a real server: the real responses of the main
//! endpoints validate against their schemas in the served `/openapi.json`, every endpoint
//! that takes a body answers bad input with `400` and a JSON error naming the field, and
//! `/metrics` passes `promtool check metrics` in the format the scraper asks for. One deploy
//! (the probe app) for all of it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{Answer, Server, exchange, http};
use serde_json::{Value, json};

const SERVICE: &str = "contract";

/// An endpoint (method, path) and bad bodies for it, each with the field its error must name.
type BadBodies = (&'static str, String, Vec<(Value, &'static str)>);

fn raw(server: &Server, method: &str, path: &str, extra: &str) -> Answer {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n{extra}Connection: close\r\n\r\n",
        server.token()
    );
    exchange(server.api_port, head.as_bytes(), Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The served document, fetched without a token (it is public).
fn document(server: &Server) -> Value {
    let head = "GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let a = exchange(server.api_port, head.as_bytes(), Duration::from_secs(30))
        .expect("GET /openapi.json");
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("content-type"), Some("application/json"));
    let doc: Value = serde_json::from_str(&a.body).expect("the document is JSON");
    assert!(
        doc["openapi"].as_str().unwrap_or("").starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    doc
}

/// The schema of one answer in `doc`, made a standalone JSON Schema: the document's
/// components ride along so that its `#/components/schemas/...` references resolve.
fn response_schema(doc: &Value, template: &str, method: &str, status: u16, media: &str) -> Value {
    let op = &doc["paths"][template][method];
    assert!(op.is_object(), "{method} {template} is not in the document");
    let mut response = &op["responses"][status.to_string()];
    if let Some(r) = response["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or_default();
        response = &doc["components"]["responses"][name];
    }
    let schema = &response["content"][media]["schema"];
    assert!(
        schema.is_object(),
        "{method} {template}: no {media} schema for {status} in {op}"
    );
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    root
}

fn schema_errors(schema: &Value, instance: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).expect("a valid JSON Schema");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Checks `GET path` against the document's schema for `template`: collects what is wrong.
fn check_json(
    server: &Server,
    doc: &Value,
    template: &str,
    path: &str,
    problems: &mut Vec<String>,
) -> Value {
    let (status, body) = server.api("GET", path, None);
    if status != 200 {
        problems.push(format!("GET {path}: {status} {body}"));
        return body;
    }
    let schema = response_schema(doc, template, "get", 200, "application/json");
    for e in schema_errors(&schema, &body) {
        problems.push(format!("GET {path}: {e}"));
    }
    body
}

/// As [`check_json`], for an NDJSON stream: every line against the schema.
fn check_ndjson(
    server: &Server,
    doc: &Value,
    template: &str,
    path: &str,
    problems: &mut Vec<String>,
) -> Vec<Value> {
    let a = raw(server, "GET", path, "");
    assert_eq!(a.status, 200, "GET {path}: {a:?}");
    assert_eq!(
        a.header("content-type"),
        Some("application/x-ndjson"),
        "{path}"
    );
    let schema = response_schema(doc, template, "get", 200, "application/x-ndjson");
    let lines: Vec<Value> = a
        .body
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {e}: {l}")))
        .collect();
    for (i, line) in lines.iter().enumerate() {
        for e in schema_errors(&schema, line) {
            problems.push(format!("GET {path} line {i}: {e}"));
        }
    }
    lines
}

fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (apt-get install prometheus; scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    // promtool reads its stdin to the end and exits; it has been given all of it.
    let out = child.wait_with_output().expect("promtool ran");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn real_responses_match_the_served_schemas_and_bad_input_gets_400_naming_the_field() {
    let server = Server::start("contract", &[]);
    server.deploy_probe(SERVICE, &[]);
    let (status, _) = server.get(SERVICE, "/");
    assert_eq!(status, 200);
    let doc = document(&server);
    let mut problems = Vec::new();

    // The responses of the main endpoints, against their schemas.
    check_json(&server, &doc, "/v1/services", "/v1/services", &mut problems);
    let svc = format!("/v1/services/{SERVICE}");
    check_json(&server, &doc, "/v1/services/{name}", &svc, &mut problems);
    let deployments = check_json(
        &server,
        &doc,
        "/v1/services/{name}/deployments",
        &format!("{svc}/deployments"),
        &mut problems,
    );
    let id = deployments[0]["id"]
        .as_str()
        .expect("a deployment id")
        .to_string();
    check_json(
        &server,
        &doc,
        "/v1/deployments/{id}",
        &format!("/v1/deployments/{id}"),
        &mut problems,
    );
    for (template, suffix) in [
        ("/v1/services/{name}/events", "/events"),
        ("/v1/services/{name}/usage", "/usage"),
        ("/v1/services/{name}/metrics", "/metrics"),
        ("/v1/services/{name}/env", "/env"),
        ("/v1/services/{name}/env", "/env?reveal=true"),
        // Issue 14's reads: the webhook (made on first read), the uploads (none here), the
        // cron jobs and runs.
        ("/v1/services/{name}/hooks", "/hooks"),
        ("/v1/services/{name}/uploads", "/uploads"),
        ("/v1/services/{name}/cron", "/cron"),
        ("/v1/services/{name}/cron/runs", "/cron/runs"),
    ] {
        check_json(
            &server,
            &doc,
            template,
            &format!("{svc}{suffix}"),
            &mut problems,
        );
    }
    check_json(&server, &doc, "/v1/runtimes", "/v1/runtimes", &mut problems);
    // What the dashboard reads first: the server's facts and the session check (a bearer
    // token answers it too).
    check_json(&server, &doc, "/v1/server", "/v1/server", &mut problems);
    check_json(&server, &doc, "/v1/session", "/v1/session", &mut problems);
    let logs = check_ndjson(
        &server,
        &doc,
        "/v1/services/{name}/logs",
        &format!("{svc}/logs"),
        &mut problems,
    );
    assert!(
        logs.iter().any(|l| l["stream"] == "access"),
        "the request above left an access line: {logs:?}"
    );
    let events = check_ndjson(
        &server,
        &doc,
        "/v1/deployments/{id}/events",
        &format!("/v1/deployments/{id}/events"),
        &mut problems,
    );
    assert_eq!(
        events.last().map(|e| &e["type"]),
        Some(&json!("deployment"))
    );
    // Answers to writes that change nothing.
    let writes = [
        (
            "patch",
            "/v1/services/{name}/env",
            format!("{svc}/env"),
            json!({"set": {}}),
        ),
        (
            "post",
            "/v1/services/{name}/scale",
            format!("{svc}/scale"),
            json!({}),
        ),
    ];
    for (method, template, path, body) in &writes {
        let (status, answer) = server.api(&method.to_uppercase(), path, Some(&body.to_string()));
        let schema = response_schema(&doc, template, method, status, "application/json");
        for e in schema_errors(&schema, &answer) {
            problems.push(format!("{method} {path}: {status} {e}"));
        }
    }
    // A token made, listed and revoked.
    let (status, made) = server.api(
        "POST",
        "/v1/tokens",
        Some(r#"{"name": "contract", "role": "read", "service": "contract"}"#),
    );
    let schema = response_schema(&doc, "/v1/tokens", "post", status, "application/json");
    problems.extend(schema_errors(&schema, &made));
    check_json(&server, &doc, "/v1/tokens", "/v1/tokens", &mut problems);
    let revoke = format!("/v1/tokens/{}", made["token"]["id"].as_str().unwrap_or("?"));
    let (status, revoked) = server.api("DELETE", &revoke, None);
    assert_eq!(status, 200, "{revoked}");
    let schema = response_schema(
        &doc,
        "/v1/tokens/{id}",
        "delete",
        status,
        "application/json",
    );
    problems.extend(schema_errors(&schema, &revoked));
    // The check can fail: a service view with a wrong type and a field missing does not pass.
    let schema = response_schema(&doc, "/v1/services/{name}", "get", 200, "application/json");
    let (_, mut view) = server.api("GET", &svc, None);
    view["starting"] = json!("three");
    view.as_object_mut().map(|v| v.remove("url"));
    assert_eq!(schema_errors(&schema, &view).len(), 2, "{view}");
    // An error, against the error schema.
    let (status, answer) = server.api("GET", "/v1/services/no-such-service", None);
    assert_eq!(status, 404);
    let schema = response_schema(&doc, "/v1/services/{name}", "get", 404, "application/json");
    problems.extend(schema_errors(&schema, &answer));
    assert!(
        problems.is_empty(),
        "responses that break their schemas:\n{}",
        problems.join("\n")
    );

    // Every endpoint that takes a body, as the document lists them, refuses a bad one with
    // 400 and a JSON error naming the field.
    let mut with_body = Vec::new();
    for (template, item) in doc["paths"].as_object().expect("paths") {
        // A webhook takes the git host's payload as the host sends it (any other fields) and
        // only once signed: its bad input is tested in tests/hooks.rs.
        if template.starts_with("/hooks/") {
            continue;
        }
        for (method, op) in item.as_object().expect("operations") {
            if op.get("requestBody").is_some() {
                with_body.push((method.to_uppercase(), template.replace("{name}", SERVICE)));
            }
        }
    }
    with_body.sort();
    assert_eq!(
        with_body,
        [
            ("PATCH".to_string(), format!("{svc}/env")),
            ("POST".to_string(), "/v1/deployments".to_string()),
            ("POST".to_string(), format!("{svc}/cron")),
            ("POST".to_string(), format!("{svc}/rollback")),
            ("POST".to_string(), format!("{svc}/scale")),
            // A git bundle, not JSON: its bad bodies (not a bundle, a thin one against
            // missing commits, over the limit) are tests/upload.rs's.
            ("POST".to_string(), format!("{svc}/uploads")),
            ("POST".to_string(), "/v1/session".to_string()),
            ("POST".to_string(), "/v1/tokens".to_string()),
        ],
        "a new endpoint with a body needs its bad bodies below"
    );
    // (body, the field the error must name) for each endpoint: an unknown field, a wrong
    // type, an out-of-range value.
    let cases: [BadBodies; 7] = [
        (
            "PATCH",
            format!("{svc}/env"),
            vec![
                (json!({"set": {}, "sett": {}}), "sett"),
                (json!({"set": ["A=1"]}), "set"),
                (json!({"set": {"A": "x".repeat(4000)}}), "environment"),
            ],
        ),
        (
            "POST",
            "/v1/deployments".into(),
            vec![
                (json!({"source": "/tmp", "min_instance": 1}), "min_instance"),
                (
                    json!({"source": "/tmp", "max_instances": "two"}),
                    "max_instances",
                ),
                (json!({"source": "/tmp", "runtime": "cobol"}), "runtime"),
                (json!({"source": "/tmp", "concurrency": -1}), "concurrency"),
                (json!({"source": "/tmp", "port": 70000}), "port"),
                (json!({"upload": "u-1"}), "upload"),
            ],
        ),
        (
            "POST",
            format!("{svc}/cron"),
            vec![
                (
                    json!({"schedule": "* * * * *", "path": "/a", "every": 1}),
                    "every",
                ),
                (json!({"schedule": 5, "path": "/a"}), "schedule"),
                (json!({"schedule": "* * *", "path": "/a"}), "schedule"),
                (json!({"schedule": "* * * * *", "path": "a"}), "path"),
                (
                    json!({"schedule": "* * * * *", "path": "/a", "retries": 11}),
                    "retries",
                ),
            ],
        ),
        (
            "POST",
            format!("{svc}/rollback"),
            vec![
                (json!({"deploymnet": "d-0123456789"}), "deploymnet"),
                (json!({"deployment": 5}), "deployment"),
                (json!({"deployment": "d-1"}), "deployment"),
            ],
        ),
        (
            "POST",
            format!("{svc}/scale"),
            vec![
                (json!({"max_instance": 2}), "max_instance"),
                (json!({"idle_freeze": 30}), "idle_freeze"),
                (json!({"max_instances": 1000}), "max_instances"),
                (json!({"max_instances": 5_000_000_000u64}), "max_instances"),
            ],
        ),
        (
            "POST",
            "/v1/session".into(),
            vec![
                (json!({"tokn": "x"}), "tokn"),
                (json!({"token": 5}), "token"),
                (json!({"token": ""}), "token"),
            ],
        ),
        (
            "POST",
            "/v1/tokens".into(),
            vec![
                (
                    json!({"name": "ci", "role": "read", "servce": "x"}),
                    "servce",
                ),
                (json!({"name": 5, "role": "read"}), "name"),
                (json!({"name": "x".repeat(65), "role": "read"}), "name"),
                (json!({"name": "ci", "role": "owner"}), "role"),
                (
                    json!({"name": "ci", "role": "read", "service": "Nope!"}),
                    "service",
                ),
                (
                    json!({"name": "ci", "role": "read", "service": "absent"}),
                    "service",
                ),
            ],
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, bodies) in &cases {
        for (body, field) in bodies {
            let (status, answer) = server.api(method, path, Some(&body.to_string()));
            let error = answer["error"].as_str().unwrap_or_default();
            if status != 400 || !error.contains(field) {
                wrong.push(format!("{method} {path} {body}: {status} {answer}"));
            }
        }
    }
    // Bad query parameters too, on every endpoint that takes some.
    for path in [
        format!("{svc}/logs?stream=stdout,nope"),
        format!("{svc}/logs?tail=many"),
        format!("{svc}/logs?format=xml"),
        format!("{svc}/events?limit=0"),
        format!("{svc}/usage?days=x"),
        format!("{svc}/metrics?since=soon"),
        format!("{svc}/env?reveal=maybe"),
        format!("{svc}/env?revael=true"),
    ] {
        let param = path
            .split('?')
            .nth(1)
            .and_then(|q| q.split('=').next())
            .unwrap_or_default()
            .to_string();
        let (status, answer) = server.api("GET", &path, None);
        let error = answer["error"].as_str().unwrap_or_default();
        if status != 400 || !error.contains(&param) {
            wrong.push(format!("GET {path}: {status} {answer}"));
        }
    }
    // The upload's query parameters, checked before its body is read.
    for (path, param) in [
        (format!("{svc}/uploads?shallow=abc"), "shallow"),
        (format!("{svc}/uploads?shalow=abc"), "shalow"),
    ] {
        let (status, answer) = server.api("POST", &path, None);
        let error = answer["error"].as_str().unwrap_or_default();
        if status != 400 || !error.contains(param) {
            wrong.push(format!("POST {path}: {status} {answer}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "bad input not refused naming the field:\n{}",
        wrong.join("\n")
    );
    // The rule comes with the name: the allowed values of an enum are listed.
    let (_, answer) = server.api("GET", &format!("{svc}/logs?stream=nope"), None);
    let error = answer["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(
            "invalid log stream 'nope': must be one of stdout, stderr, build, system, access"
        ),
        "{error}"
    );
    // Nothing above was deployed.
    let (_, list) = server.api("GET", &format!("{svc}/deployments"), None);
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");

    // /metrics: Prometheus text 0.0.4 by default, OpenMetrics when asked; promtool accepts it.
    let text = raw(&server, "GET", "/metrics", "");
    assert_eq!(text.status, 200);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!text.body.contains("# EOF"), "{}", text.body);
    let (ok, said) = promtool(&text.body);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics:\n{said}\n{}",
        text.body
    );
    let om = raw(
        &server,
        "GET",
        "/metrics",
        "Accept: application/openmetrics-text; version=1.0.0,text/plain;q=0.5\r\n",
    );
    assert_eq!(om.status, 200);
    assert!(
        om.header("content-type")
            .is_some_and(|c| c.starts_with("application/openmetrics-text")),
        "{om:?}"
    );
    assert!(om.body.trim_end().ends_with("# EOF"), "{}", om.body);
    // Both carry the same samples.
    let samples = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.rsplit_once(' ').map_or(l, |(s, _)| s).to_string())
            .collect()
    };
    assert_eq!(samples(&text.body), samples(&om.body));
    // A method a path does not take: 405, a JSON error too.
    let (status, answer) = server.api("DELETE", "/v1/runtimes", None);
    assert_eq!(status, 405, "{answer}");
    assert!(answer["error"].as_str().is_some(), "{answer}");
    // The document itself is public; the API is not.
    let (status, _) = http(server.api_port, "127.0.0.1", "/v1/services").expect("GET");
    assert_eq!(status, 401);
}
