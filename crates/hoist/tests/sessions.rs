//! The dashboard's side of the API listener, against a real server: signing in trades the
//! admin token for an HttpOnly cookie, requests made with the cookie that change anything
//! need the session's CSRF token and no other site's Origin, signing out ends the session, a
//! session outlives a restart; the embedded dashboard answers its client routes with
//! index.html and the security headers, and `--no-dashboard` turns it off.

mod common;

use std::time::Duration;

use common::{Answer, Server, exchange};
use serde_json::Value;

/// One request to the API listener: `extra` header lines (each ending in `\r\n`), a JSON body.
fn request(server: &Server, method: &str, path: &str, extra: &str, body: Option<&str>) -> Answer {
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}Content-Type: application/json\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        port = server.api_port,
        len = body.len()
    );
    exchange(server.api_port, head.as_bytes(), Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn json(a: &Answer) -> Value {
    serde_json::from_str(a.body.trim()).unwrap_or(Value::Null)
}

/// Signs in with `token`; the cookie header line to send and the CSRF token.
fn sign_in(server: &Server, token: &str) -> (String, String) {
    let a = request(
        server,
        "POST",
        "/v1/session",
        "",
        Some(&format!(r#"{{"token": "{token}"}}"#)),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let set = a.header("set-cookie").expect("a Set-Cookie").to_string();
    let value = set
        .split(';')
        .next()
        .and_then(|kv| kv.strip_prefix("hoist_session="))
        .unwrap_or_else(|| panic!("{set}"));
    let csrf = json(&a)["csrf_token"].as_str().unwrap().to_string();
    (format!("Cookie: hoist_session={value}\r\n"), csrf)
}

#[test]
fn a_session_cookie_reads_changes_only_with_csrf_and_ends_at_sign_out() {
    let mut server = Server::start("sessions", &[]);
    let a = request(&server, "GET", "/v1/server", "", None);
    assert_eq!(
        a.status, 401,
        "/v1/server needs credentials like the rest of /v1"
    );
    let token = server.token();

    // The cookie's flags.
    let a = request(
        &server,
        "POST",
        "/v1/session",
        "",
        Some(&format!(r#"{{"token": "{token}"}}"#)),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let set = a.header("set-cookie").unwrap();
    let attrs: Vec<&str> = set.split(';').map(str::trim).collect();
    assert!(
        attrs[0].starts_with("hoist_session=") && attrs[0].len() == 14 + 64,
        "{set}"
    );
    for want in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=604800"] {
        assert!(attrs.contains(&want), "{want} missing from {set}");
    }
    let info = json(&a);
    let week = 7 * 86_400_000;
    let expires = info["expires_at"].as_i64().unwrap();
    let now = hoist_store::now_ms();
    assert!(
        (now + week - 60_000..=now + week + 60_000).contains(&expires),
        "{info}"
    );

    // A wrong token: 401 saying so and where the admin token is; an empty one names `token`.
    let a = request(
        &server,
        "POST",
        "/v1/session",
        "",
        Some(r#"{"token": "hoist_0000"}"#),
    );
    assert_eq!(a.status, 401, "{}", a.body);
    let err = json(&a);
    let msg = err["error"].as_str().unwrap();
    assert!(
        msg.contains("not valid") && msg.contains("admin-token"),
        "{msg}"
    );
    assert!(a.header("set-cookie").is_none());
    let a = request(&server, "POST", "/v1/session", "", Some(r#"{"token": ""}"#));
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(json(&a)["field"], "token");

    let (cookie, csrf) = sign_in(&server, &token);
    // A read with the cookie alone.
    let a = request(&server, "GET", "/v1/services", &cookie, None);
    assert_eq!(a.status, 200, "{}", a.body);
    let a = request(&server, "GET", "/v1/session", &cookie, None);
    assert_eq!(json(&a)["csrf_token"], csrf.as_str());

    // Changes without the CSRF token, or with a wrong one: 403, and nothing changed.
    server.deploy_probe("web", &[]);
    let env_change = r#"{"set": {"COLOR": "red"}}"#;
    let wrong = format!("{cookie}X-CSRF-Token: {}\r\n", "0".repeat(64));
    for extra in [cookie.as_str(), wrong.as_str()] {
        let a = request(
            &server,
            "PATCH",
            "/v1/services/web/env",
            extra,
            Some(env_change),
        );
        assert_eq!(a.status, 403, "{}", a.body);
        assert!(
            json(&a)["error"].as_str().unwrap().contains("X-CSRF-Token"),
            "{}",
            a.body
        );
        let a = request(
            &server,
            "POST",
            "/v1/services/web/scale",
            extra,
            Some(r#"{"max_instances": 7}"#),
        );
        assert_eq!(a.status, 403, "{}", a.body);
        let a = request(&server, "DELETE", "/v1/services/web", extra, None);
        assert_eq!(a.status, 403, "{}", a.body);
    }
    let (_, env) = server.api("GET", "/v1/services/web/env", None);
    assert_eq!(env["names"], serde_json::json!([]), "{env}");
    let view = server.service("web");
    assert_eq!(view["name"], "web", "not deleted");
    assert_ne!(view["scaling"]["max_instances"], 7, "{view}");

    // From another site, even with the token: 403.
    let cross = format!("{cookie}X-CSRF-Token: {csrf}\r\nOrigin: http://evil.example\r\n");
    let a = request(
        &server,
        "PATCH",
        "/v1/services/web/env",
        &cross,
        Some(env_change),
    );
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        json(&a)["error"].as_str().unwrap().contains("cross-site"),
        "{}",
        a.body
    );
    let (_, env) = server.api("GET", "/v1/services/web/env", None);
    assert_eq!(env["names"], serde_json::json!([]), "{env}");

    // With it (and the page's own Origin): done.
    let ok = format!(
        "{cookie}X-CSRF-Token: {csrf}\r\nOrigin: http://127.0.0.1:{}\r\n",
        server.api_port
    );
    let a = request(
        &server,
        "PATCH",
        "/v1/services/web/env",
        &ok,
        Some(env_change),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let (_, env) = server.api("GET", "/v1/services/web/env", None);
    assert_eq!(env["names"], serde_json::json!(["COLOR"]), "{env}");
    let a = request(
        &server,
        "POST",
        "/v1/services/web/scale",
        &ok,
        Some(r#"{"max_instances": 7}"#),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(server.service("web")["scaling"]["max_instances"], 7);

    // The session outlives a restart of the server.
    server.terminate(Duration::from_secs(60));
    server.spawn();
    let a = request(&server, "GET", "/v1/services", &cookie, None);
    assert_eq!(a.status, 200, "after a restart: {}", a.body);

    // Sign-out: the cookie is cleared and no longer works, for reads or changes.
    let a = request(&server, "DELETE", "/v1/session", &ok, None);
    assert_eq!(a.status, 204, "{}", a.body);
    let cleared = a.header("set-cookie").unwrap();
    assert!(
        cleared.contains("hoist_session=;") && cleared.contains("Max-Age=0"),
        "{cleared}"
    );
    let a = request(&server, "GET", "/v1/services", &cookie, None);
    assert_eq!(a.status, 401, "{}", a.body);
    assert!(
        json(&a)["error"].as_str().unwrap().contains("sign in"),
        "{}",
        a.body
    );
    let a = request(&server, "GET", "/v1/session", &cookie, None);
    assert_eq!(a.status, 401);
    let a = request(&server, "DELETE", "/v1/services/web", &ok, None);
    assert_eq!(a.status, 401, "{}", a.body);
    assert_eq!(server.service("web")["name"], "web", "not deleted");
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

fn assert_security_headers(a: &Answer, what: &str) {
    assert_eq!(a.header("content-security-policy"), Some(CSP), "{what}");
    assert_eq!(a.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        a.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(a.header("referrer-policy"), Some("same-origin"), "{what}");
}

#[test]
fn the_dashboard_is_served_with_its_headers_and_no_dashboard_turns_it_off() {
    let server = Server::start("dashboard", &[]);
    let index = request(&server, "GET", "/", "", None);
    assert_ne!(
        index.status, 503,
        "this hoist binary was built without ui/dist: build the UI (scripts/setup.sh, or \
         `cd ui && npm ci && npm run build`) and run the test again"
    );
    assert_eq!(index.status, 200, "{}", index.body);
    assert!(index.body.contains("<div id=\"app\">"), "{}", index.body);
    assert!(!index.body.contains("<style") && !index.body.contains("style=\""));
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    assert_security_headers(&index, "/");
    // A client route is the same page.
    for path in ["/services/x/logs", "/login?next=%2Fnew", "/new"] {
        let a = request(&server, "GET", path, "", None);
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.body, index.body, "{path}");
        assert_security_headers(&a, path);
    }
    // The script it loads: cacheable for good, compressed when asked.
    let script = index
        .body
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .filter(|s| s.starts_with("/assets/"))
        .unwrap_or_else(|| panic!("no /assets/ script in {}", index.body))
        .to_string();
    let a = request(
        &server,
        "GET",
        &script,
        "Accept-Encoding: gzip, br\r\n",
        None,
    );
    assert_eq!(a.status, 200, "{script}");
    assert_eq!(
        a.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(a.header("content-encoding"), Some("gzip"));
    assert_eq!(a.header("vary"), Some("Accept-Encoding"));
    assert!(a.header("content-type").unwrap().contains("javascript"));
    assert_security_headers(&a, &script);
    let etag = a.header("etag").unwrap().to_string();
    let a = request(
        &server,
        "GET",
        &script,
        &format!("Accept-Encoding: gzip\r\nIf-None-Match: {etag}\r\n"),
        None,
    );
    assert_eq!(a.status, 304);
    let a = request(&server, "GET", "/assets/index-gone.js", "", None);
    assert_eq!(a.status, 404);
    // The API keeps its own answers and gets the headers too.
    let a = request(&server, "GET", "/v1/nope", "", None);
    assert_eq!(a.status, 404);
    assert_eq!(json(&a)["error"], "no such endpoint");
    assert_security_headers(&a, "/v1/nope");
    let a = request(&server, "GET", "/healthz", "", None);
    assert_security_headers(&a, "/healthz");
    drop(server);

    let server = Server::start("no-dashboard", &["--no-dashboard"]);
    for path in ["/", "/services/x/logs", &script] {
        let a = request(&server, "GET", path, "", None);
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert_eq!(json(&a)["error"], "no such endpoint", "{path}");
        assert_security_headers(&a, path);
    }
}

#[test]
fn the_server_and_service_views_carry_what_the_dashboard_shows() {
    // Metrics sampled every second, so the last 24 hours' counts fill in quickly.
    let server = Server::start("views", &["--metrics-resolution", "1s"]);
    let (code, info) = server.api("GET", "/v1/server", None);
    assert_eq!(code, 200, "{info}");
    assert_eq!(info["domain"], "localhost");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["memory"]["default_mb"], 512);
    assert_eq!(info["memory"]["min_mb"], 128);
    assert_eq!(info["memory"]["max_mb"], 7076);
    let options = info["memory_options"].as_array().unwrap();
    let cpu_of = |mb: u64| {
        options
            .iter()
            .find(|o| o["memory_mb"] == mb)
            .map(|o| o["cpu_millicores"].as_u64().unwrap())
    };
    assert_eq!(cpu_of(512), Some(289), "{info}");
    assert_eq!(cpu_of(1769), Some(1000), "{info}");
    assert_eq!(cpu_of(7076), Some(4000), "{info}");
    assert_eq!(info["scaling_defaults"]["min_instances"], 0, "{info}");
    assert!(info["scaling_defaults"]["max_instances"].as_u64().unwrap() >= 1);

    // A deploy's bad input names its field, for the form to show the error beside it.
    let app = common::example("flask-hello");
    let app = app.to_str().unwrap();
    let bad = [
        (serde_json::json!({"source": ""}), "source"),
        (
            serde_json::json!({"source": app, "memory": "64mb"}),
            "memory",
        ),
        (serde_json::json!({"source": app, "port": 0}), "port"),
        (serde_json::json!({"source": app, "port": "x"}), "port"),
        (serde_json::json!({"source": app, "env": ["1X=2"]}), "env"),
        (serde_json::json!({"source": app, "root": "../x"}), "root"),
        (
            serde_json::json!({"source": app, "runtime": "cobol"}),
            "runtime",
        ),
        (
            serde_json::json!({"source": app, "min_instances": 5, "max_instances": 2}),
            "min_instances",
        ),
    ];
    for (body, field) in bad {
        let (code, err) = server.api("POST", "/v1/deployments", Some(&body.to_string()));
        assert_eq!(code, 400, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
        assert!(err["error"].as_str().unwrap().contains(field), "{err}");
    }
    let (code, err) = server.api("GET", "/v1/services/x/usage?days=0", None);
    assert_eq!((code, &err["field"]), (400, &Value::from("days")), "{err}");
    let (_, list) = server.api("GET", "/v1/services", None);
    assert_eq!(list, serde_json::json!([]), "no bad deploy went through");

    server.deploy_probe("counted", &["--min-instances", "1"]);
    server.deploy_probe("quiet", &[]);
    for _ in 0..5 {
        assert_eq!(server.get("counted", "/").0, 200);
    }
    assert_eq!(server.get("counted", "/status?code=503").0, 503);
    let counted = |list: &Value| {
        list.as_array()
            .and_then(|l| l.iter().find(|s| s["name"] == "counted"))
            .map(|s| (s["requests_24h"].as_u64(), s["errors_24h"].as_u64()))
    };
    common::wait_until(
        "the services list counts the requests of the last 24 h",
        Duration::from_secs(30),
        || {
            let (_, list) = server.api("GET", "/v1/services", None);
            matches!(counted(&list), Some((Some(6..), Some(1..)))).then_some(())
        },
        || format!("{:?}", counted(&server.api("GET", "/v1/services", None).1)),
    );
    let (_, list) = server.api("GET", "/v1/services", None);
    let quiet = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "quiet")
        .unwrap();
    assert_eq!(quiet["requests_24h"], 0, "{quiet}");
    let view = server.service("counted");
    assert!(view["requests_24h"].as_u64().unwrap() >= 6, "{view}");
    assert_eq!(view["errors_24h"], 1, "{view}");

    // A running instance's memory and CPU, read from its cgroup.
    let running = view["running"].as_array().unwrap();
    assert!(!running.is_empty(), "{view}");
    for i in running {
        let memory = i["memory_bytes"].as_u64().unwrap_or(0);
        assert!(memory > 1 << 20, "an app uses more than a MB: {i}");
        assert!(i["cpu_ms"].is_u64(), "{i}");
    }
}
