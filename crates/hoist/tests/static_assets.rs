//! End to end: static files taken from a build and answered by the gateway itself. A Python
//! app (tests/apps/staticsite) whose build writes `dist/` (a hashed bundle, a page, a
//! stylesheet, 1 MiB of binary, links out of the folder, names with odd bytes) beside an API
//! route; static-only sites (configured, and detected from a build's `dist/`); a redeploy
//! across the grace time; and a `--static` folder the build did not leave. One server.

mod common;

use std::io::Read;
use std::time::Duration;

use common::staticwire::{GRACE, Reply, get, repo_of, request, server, site_app};
use common::{Server, commit_all, git_repo, metric, wait_until};

const OLD_BUNDLE: &str = "/app.3f9c1a2b.js";
const NEW_BUNDLE: &str = "/app.7d2e4c1f.js";

fn service_json(s: &Server, name: &str) -> serde_json::Value {
    let out = s.hoist_ok(&["status", name, "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
}

/// `(cold starts, instances ever started, running now, starting now)`.
fn counts(s: &Server, name: &str) -> (u64, usize, usize, u64) {
    let v = service_json(s, name);
    (
        v["cold_starts"].as_u64().unwrap_or(u64::MAX),
        v["instances"].as_array().map_or(usize::MAX, Vec::len),
        v["running"].as_array().map_or(usize::MAX, Vec::len),
        v["starting"].as_u64().unwrap_or(u64::MAX),
    )
}

fn gunzip(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

fn unbrotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(body, 4096)
        .read_to_end(&mut out)
        .expect("a brotli body");
    out
}

/// Never anything from outside the folder: no host file, not the app's own secret.
fn nothing_from_outside(r: &Reply, target: &str) {
    let text = r.text();
    assert!(
        !text.contains("root:x:0:0") && !text.contains("SECRET"),
        "{target} served something outside dist/: {r:?}"
    );
    assert!(
        !r.is_static(),
        "{target} was answered from the static files: {r:?}"
    );
}

#[test]
fn assets_of_a_service_at_zero_are_answered_without_an_instance() {
    let s = server();
    let repo = git_repo(&site_app(), &format!("web-{}", s.api_port));
    let out = s.deploy_ok(&[
        repo.to_str().unwrap(),
        "--name",
        "web",
        "--idle-freeze",
        "100ms",
        "--idle-stop",
        "300ms",
    ]);
    assert!(
        out.contains("==> static: 5 files, ") && out.contains("from dist/"),
        "{out}"
    );
    assert!(
        out.contains("served by the gateway at /"),
        "the deploy says where: {out}"
    );
    // The links out of the folder and the odd names were left out, and said so.
    for skipped in ["passwd", "up.txt", "tab"] {
        assert!(
            out.lines()
                .any(|l| l.contains("static: ") && l.contains(skipped) && l.contains("skipped")),
            "{skipped} named as skipped in:\n{out}"
        );
    }
    let status = s.hoist_ok(&["status", "web"]);
    assert!(status.contains("static   dist at /: 5 files"), "{status}");

    // To zero: the deploy's instance stops on the idle timer.
    wait_until(
        "web at zero instances",
        Duration::from_secs(60),
        || (counts(&s, "web").2 == 0).then_some(()),
        || s.status("web"),
    );
    let before = counts(&s, "web");
    let assets = [
        OLD_BUNDLE,
        "/",
        "/index.html",
        "/style.css",
        "/big.bin",
        "/docs/",
    ];
    let burst: Vec<Reply> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let s = &s;
                scope.spawn(move || {
                    (0..6)
                        .map(|i| get(s, "web", assets[(w + i) % assets.len()], ""))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a burst worker"))
            .collect()
    });
    for r in &burst {
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.is_static(), "{r:?}");
    }
    let after = counts(&s, "web");
    assert_eq!(
        before, after,
        "no cold start, no instance started, none running or starting"
    );
    let now = service_json(&s, "web");
    assert!(
        now["instances"]
            .as_array()
            .is_some_and(|l| l.iter().all(|i| i["cold"] == false)),
        "{now}"
    );

    // Caching: hashed names for a year, the page revalidated; ETag -> 304.
    let bundle = get(&s, "web", OLD_BUNDLE, "");
    assert_eq!(
        bundle.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(bundle.text().contains("bundle v1"), "{bundle:?}");
    let page = get(&s, "web", "/", "");
    assert_eq!(page.header("cache-control"), Some("no-cache"), "{page:?}");
    assert!(page.text().contains("<title>site v1</title>"), "{page:?}");
    let etag = bundle.header("etag").expect("an ETag").to_string();
    let again = get(&s, "web", OLD_BUNDLE, &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(again.status, 304, "{again:?}");
    assert!(again.body.is_empty());
    let other = get(&s, "web", OLD_BUNDLE, "If-None-Match: \"nope\"\r\n");
    assert_eq!(other.status, 200);

    // Compressed answers are the file's bytes once decompressed.
    let css = get(&s, "web", "/style.css", "");
    assert!(
        css.header("content-type")
            .is_some_and(|t| t.starts_with("text/css"))
    );
    let br = get(&s, "web", "/style.css", "Accept-Encoding: br, gzip\r\n");
    assert_eq!(
        br.header("content-encoding"),
        Some("br"),
        "{:?}",
        br.headers
    );
    assert_eq!(br.header("vary"), Some("Accept-Encoding"));
    assert!(br.body.len() < css.body.len());
    assert_eq!(unbrotli(&br.body), css.body);
    let gz = get(&s, "web", "/style.css", "Accept-Encoding: gzip\r\n");
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gunzip(&gz.body), css.body);

    // A range of the 1 MiB file.
    let big = get(&s, "web", "/big.bin", "");
    assert_eq!(big.body.len(), 1 << 20);
    let part = get(&s, "web", "/big.bin", "Range: bytes=1000-1999\r\n");
    assert_eq!(part.status, 206, "{:?}", part.headers);
    assert_eq!(
        part.header("content-range"),
        Some("bytes 1000-1999/1048576")
    );
    assert_eq!(part.body, big.body[1000..2000]);
    let tail = get(&s, "web", "/big.bin", "Range: bytes=-16\r\n");
    assert_eq!(tail.body, big.body[(1 << 20) - 16..]);

    // Still nothing started; then the API route does wake the app (the counter can move).
    assert_eq!(counts(&s, "web").0, before.0);
    let api = get(&s, "web", "/api/hello", "");
    assert_eq!((api.status, api.is_static()), (200, false), "{api:?}");
    assert!(api.text().starts_with("api ok"));
    assert_eq!(
        counts(&s, "web").0,
        before.0 + 1,
        "the API request was a cold start"
    );

    // Nothing outside the folder, whatever the path says (the app answers what is no file).
    for target in [
        "/passwd",
        "/up.txt",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/docs/..%2f..%2fsecret.txt",
        "/docs/%2e%2e/%2e%2e/secret.txt",
        "/secret.txt",
        "/odd%FFname.txt",
        "/tab%09name.txt",
    ] {
        nothing_from_outside(&get(&s, "web", target, ""), target);
    }

    // Every static answer has its access line, marked, and counts in the request metrics.
    let access = wait_until(
        "the static access lines",
        Duration::from_secs(30),
        || {
            let out = s.hoist_ok(&["logs", "web", "--stream", "access", "--tail", "500"]);
            let marked = out
                .lines()
                .filter(|l| l.contains(&format!("GET {OLD_BUNDLE} ")) && l.ends_with(" static"))
                .count();
            // The access log is written in batches: the app's line may come a batch later.
            let app = out.lines().any(|l| l.contains("GET /api/hello 200"));
            (marked >= 8 && app).then_some(out)
        },
        || s.hoist_ok(&["logs", "web", "--stream", "access", "--tail", "20"]),
    );
    assert!(
        access
            .lines()
            .any(|l| l.contains("GET /api/hello 200") && !l.ends_with(" static")),
        "the app's answer is not marked: {access}"
    );
    let served = metric(
        &s.metrics_text(),
        r#"hoist_requests_total{service="web",code="2xx"}"#,
    )
    .unwrap_or(0.0);
    assert!(
        served >= burst.len() as f64,
        "{served} 2xx requests counted"
    );
}

#[test]
fn static_sites_never_run_an_instance() {
    let s = server();
    // Configured, with the SPA fallback and no start command.
    let repo = repo_of(
        &format!("spa-{}", s.api_port),
        &[
            (
                "hoist.toml",
                "runtime = \"python\"\n[static]\ndir = \"public\"\nspa = true\n",
            ),
            ("public/index.html", "<h1>spa shell</h1>\n"),
            (
                "public/assets/logo.svg",
                "<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n",
            ),
        ],
    );
    let out = s.deploy_ok(&[repo.to_str().unwrap(), "--name", "spa"]);
    assert!(out.contains("a static site"), "{out}");
    for target in ["/", "/users/42", "/settings/profile"] {
        let r = get(&s, "spa", target, "");
        assert_eq!(r.status, 200, "{target}: {r:?}");
        assert!(
            r.is_static() && r.text().contains("spa shell"),
            "{target}: {r:?}"
        );
    }
    let logo = get(&s, "spa", "/assets/logo.svg", "");
    assert!(
        logo.header("content-type")
            .is_some_and(|t| t.starts_with("image/svg+xml"))
    );
    // A miss that looks like a file, another method, the health check: the gateway's own.
    let miss = get(&s, "spa", "/missing.png", "");
    assert_eq!(miss.status, 404, "{miss:?}");
    let post = request(&s, "POST", "spa", "/", "Content-Length: 0\r\n");
    assert_eq!(post.status, 405, "{post:?}");
    let health = get(&s, "spa", "/kaithhealth", "");
    assert!(health.status > 0 && health.status < 500, "{health:?}");
    assert_eq!(counts(&s, "spa"), (0, 0, 0, 0), "{}", s.status("spa"));
    assert!(s.status("spa").contains("a static site, no instance runs"));

    // Detected: a build leaving dist/index.html, and nothing to run.
    let repo = repo_of(
        &format!("vite-{}", s.api_port),
        &[(
            "hoist.toml",
            "runtime = \"python\"\nbuild = \"mkdir -p dist && printf '<h1>vite build</h1>' > dist/index.html\"\n",
        )],
    );
    let out = s.deploy_ok(&[repo.to_str().unwrap(), "--name", "vite"]);
    assert!(out.contains("==> static: detected dist/ at /"), "{out}");
    let page = get(&s, "vite", "/", "");
    assert!(
        page.is_static() && page.text().contains("vite build"),
        "{page:?}"
    );
    assert_eq!(get(&s, "vite", "/nope", "").status, 404);
    assert_eq!(counts(&s, "vite"), (0, 0, 0, 0));
    let (_, list) = s.api("GET", "/v1/services/vite/deployments", None);
    let d = list[0].clone();
    assert_eq!(d["state"], "live", "{list}");
    assert_eq!(d["static"]["files"], 1, "{d}");
    assert_eq!(d["static"]["dir"], "dist", "{d}");
    assert!(d["static"]["detected"].is_string(), "{d}");
}

#[test]
fn a_redeploy_serves_new_files_at_once_and_old_hashed_ones_for_the_grace() {
    // A server of its own: it is restarted within the grace time, which is counted from the
    // switch on record, not from the start.
    let grace = GRACE * 2;
    let mut s = Server::start(
        "static-grace",
        &["--static-grace", &format!("{}s", grace.as_secs())],
    );
    let repo = git_repo(&site_app(), &format!("fresh-{}", s.api_port));
    let path = repo.to_str().unwrap();
    s.deploy_ok(&[path, "--name", "fresh"]);
    assert!(get(&s, "fresh", OLD_BUNDLE, "").is_static());
    std::fs::write(repo.join("version.txt"), "v2\n").expect("version");
    commit_all(&repo, "v2");
    let out = s.deploy_ok(&[path, "--name", "fresh"]);
    // Only the changed files were new to the store.
    assert!(out.contains("(2 new to the store)"), "{out}");
    let page = get(&s, "fresh", "/", "");
    assert!(
        page.text().contains("site v2"),
        "the new page at once: {page:?}"
    );
    let new = get(&s, "fresh", NEW_BUNDLE, "");
    assert!(
        new.is_static() && new.text().contains("bundle v2"),
        "{new:?}"
    );
    // A page loaded before the switch still gets its chunk...
    let old = get(&s, "fresh", OLD_BUNDLE, "");
    assert!(
        old.is_static() && old.text().contains("bundle v1"),
        "{old:?}"
    );
    // Also after a restart of the server (from the switch time in the database).
    s.restart();
    let old = get(&s, "fresh", OLD_BUNDLE, "");
    assert!(
        old.is_static() && old.text().contains("bundle v1"),
        "after a restart: {old:?}"
    );
    assert!(get(&s, "fresh", "/", "").text().contains("site v2"));
    // ...until the grace time is over; then the path is the app's again.
    let gone = wait_until(
        "the old bundle to stop answering",
        grace + Duration::from_secs(20),
        || {
            let r = get(&s, "fresh", OLD_BUNDLE, "");
            (!r.is_static()).then_some(r)
        },
        || format!("{:?}", get(&s, "fresh", OLD_BUNDLE, "").headers),
    );
    assert!(gone.text().contains("app 404"), "{gone:?}");
    // A rollback serves its deployment's files again, and the ones it replaced for the grace.
    s.hoist_ok(&["rollback", "fresh"]);
    let page = get(&s, "fresh", "/", "");
    assert!(
        page.is_static() && page.text().contains("site v1"),
        "{page:?}"
    );
    assert!(get(&s, "fresh", OLD_BUNDLE, "").is_static());
    let replaced = get(&s, "fresh", NEW_BUNDLE, "");
    assert!(
        replaced.is_static() && replaced.text().contains("bundle v2"),
        "{replaced:?}"
    );
}

#[test]
fn a_static_folder_the_build_did_not_leave_fails_the_deploy_and_the_live_one_serves() {
    let s = server();
    let repo = git_repo(&site_app(), &format!("keep-{}", s.api_port));
    let path = repo.to_str().unwrap();
    s.deploy_ok(&[path, "--name", "keep"]);
    let live = service_json(&s, "keep")["service"]["live_deployment"].clone();
    let err = s.deploy_err(&[path, "--name", "keep", "--static", "nope"]);
    assert!(
        err.contains("--static nope: no such folder after the build"),
        "{err}"
    );
    assert!(
        err.contains("dist/") && err.contains("server.py"),
        "what is there: {err}"
    );
    assert_eq!(service_json(&s, "keep")["service"]["live_deployment"], live);
    let page = get(&s, "keep", "/", "");
    assert!(
        page.is_static() && page.text().contains("site v1"),
        "{page:?}"
    );

    // Bad settings are refused before anything is built, naming the field.
    let err = s.deploy_err(&[path, "--name", "keep", "--static", "../up"]);
    assert!(err.contains("invalid static '../up'"), "{err}");
    for (body, field) in [
        (
            format!(r#"{{"source":"{path}","static":"/srv/dist"}}"#),
            "static",
        ),
        (
            format!(r#"{{"source":"{path}","static":"dist","static_prefix":"assets"}}"#),
            "static_prefix",
        ),
        (
            format!(r#"{{"source":"{path}","static_spa":"yes"}}"#),
            "static_spa",
        ),
    ] {
        let (status, v) = s.api("POST", "/v1/deployments", Some(&body));
        assert_eq!(
            (status, v["field"].as_str()),
            (400, Some(field)),
            "{body}: {v}"
        );
    }

    // Neither a start command nor a static folder: refused, and the message says both ways.
    let repo = repo_of(
        &format!("empty-{}", s.api_port),
        &[("hoist.toml", "runtime = \"python\"\n")],
    );
    let err = s.deploy_err(&[repo.to_str().unwrap(), "--name", "nothing"]);
    assert!(
        err.contains("missing start command") && err.contains("--static DIR"),
        "{err}"
    );
}

#[test]
fn a_next_js_standalone_build_is_detected_and_the_app_serves_the_rest() {
    let s = server();
    let build = "mkdir -p .next/standalone .next/static/chunks public && \
                 printf 'server' > .next/standalone/server.js && \
                 printf 'chunk();' > .next/static/chunks/main-3f9c1a2b.js && \
                 printf 'User-agent: *' > public/robots.txt";
    let repo = repo_of(
        &format!("next-{}", s.api_port),
        &[(
            "hoist.toml",
            &format!(
                "runtime = \"python\"\nbuild = \"{build}\"\nstart = \"python3 -m http.server $PORT\"\n"
            ),
        )],
    );
    let out = s.deploy_ok(&[repo.to_str().unwrap(), "--name", "next"]);
    assert!(
        out.contains("==> static: detected") && out.contains("/_next/static"),
        "{out}"
    );
    let chunk = get(&s, "next", "/_next/static/chunks/main-3f9c1a2b.js", "");
    assert!(chunk.is_static() && chunk.text() == "chunk();", "{chunk:?}");
    assert_eq!(
        chunk.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let robots = get(&s, "next", "/robots.txt", "");
    assert!(
        robots.is_static() && robots.text().contains("User-agent"),
        "{robots:?}"
    );
    // Everything else is the app's (here Python's directory listing).
    let page = get(&s, "next", "/", "");
    assert_eq!((page.status, page.is_static()), (200, false), "{page:?}");
}
