use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode};

use super::{Scratch, text};
use crate::{Limits, Manifest, Site, SiteConfig, Store};

struct Fixture {
    _scratch: Scratch,
    store: Arc<Store>,
    manifest: Manifest,
    js: String,
}

/// A built frontend: a page, a hashed bundle, a plain file, a docs folder, an image.
fn fixture() -> Fixture {
    let s = Scratch::new("site");
    let js = text("bundle", 16);
    s.write(
        "dist/index.html",
        "<!doctype html><title>home</title><script src=/assets/index-BcD3fG.js></script>",
    );
    s.write("dist/assets/index-BcD3fG.js", &js);
    s.write("dist/robots.txt", "User-agent: *\n");
    s.write("dist/docs/index.html", "<h1>docs</h1>");
    s.write("dist/img/logo.png", [0x89, b'P', b'N', b'G', 0, 0, 0, 0]);
    s.write("dist/a b.txt", "spaced");
    s.write("secret.txt", "outside");
    let store = Arc::new(Store::open(s.path().join("store")).expect("store"));
    let manifest = store
        .ingest(&s.path().join("dist"), &Limits::default())
        .expect("ingest");
    Fixture {
        _scratch: s,
        store,
        manifest,
        js,
    }
}

fn site(f: &Fixture, config: SiteConfig) -> Site {
    Site::new(f.store.clone(), f.manifest.clone(), config).expect("site")
}

fn app_site(f: &Fixture) -> Site {
    site(f, SiteConfig::default())
}

fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> Parts {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).expect("request").into_parts().0
}

fn get(site: &Site, uri: &str, headers: &[(&str, &str)]) -> Option<Response<Bytes>> {
    site.respond(&req("GET", uri, headers))
}

fn hdr<'a>(resp: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

const JS: &str = "/assets/index-BcD3fG.js";

#[test]
fn a_file_is_served_with_its_type_length_validators_and_the_static_mark() {
    let f = fixture();
    let site = app_site(&f);
    let resp = get(&site, JS, &[]).expect("static answer");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.body(), f.js.as_bytes());
    assert_eq!(
        hdr(&resp, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        hdr(&resp, "content-length"),
        Some(f.js.len().to_string().as_str())
    );
    assert_eq!(hdr(&resp, "x-hoist-static"), Some("hit"));
    assert_eq!(hdr(&resp, "vary"), Some("Accept-Encoding"));
    assert_eq!(hdr(&resp, "accept-ranges"), Some("bytes"));
    assert_eq!(hdr(&resp, "content-encoding"), None);
    let etag = hdr(&resp, "etag").expect("etag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && !etag.starts_with("W/"),
        "{etag}"
    );
    let modified = hdr(&resp, "last-modified").expect("last-modified");
    assert!(httpdate::parse_http_date(modified).is_ok(), "{modified}");
    let png = get(&site, "/img/logo.png", &[]).expect("png");
    assert_eq!(hdr(&png, "content-type"), Some("image/png"));
    assert_eq!(
        hdr(&png, "vary"),
        None,
        "nothing to vary on without variants"
    );
    let spaced = get(&site, "/a%20b.txt", &[]).expect("percent-decoded");
    assert_eq!(spaced.body(), "spaced");
}

#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let f = fixture();
    let site = app_site(&f);
    let resp = site.respond(&req("HEAD", JS, &[])).expect("head");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.body().is_empty());
    assert_eq!(
        hdr(&resp, "content-length"),
        Some(f.js.len().to_string().as_str())
    );
}

#[test]
fn other_methods_go_to_the_app_or_get_405_on_a_static_only_site() {
    let f = fixture();
    assert!(app_site(&f).respond(&req("POST", JS, &[])).is_none());
    let only = site(
        &f,
        SiteConfig {
            has_app: false,
            ..SiteConfig::default()
        },
    );
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        let resp = only.respond(&req(method, JS, &[])).expect("answered");
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(hdr(&resp, "allow"), Some("GET, HEAD"));
        assert_eq!(hdr(&resp, "x-hoist-static"), Some("hit"));
    }
}

#[test]
fn if_none_match_gives_304_and_etags_differ_per_encoding() {
    let f = fixture();
    let site = app_site(&f);
    let plain = get(&site, JS, &[]).expect("plain");
    let gz = get(&site, JS, &[("accept-encoding", "gzip")]).expect("gzip");
    let br = get(&site, JS, &[("accept-encoding", "gzip, br")]).expect("br");
    let tags = [hdr(&plain, "etag"), hdr(&gz, "etag"), hdr(&br, "etag")].map(Option::unwrap);
    assert!(
        tags[0] != tags[1] && tags[1] != tags[2] && tags[0] != tags[2],
        "{tags:?}"
    );

    let again = get(&site, JS, &[("if-none-match", tags[0])]).expect("304");
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.body().is_empty());
    assert_eq!(hdr(&again, "etag"), Some(tags[0]));
    assert_eq!(hdr(&again, "x-hoist-static"), Some("hit"));
    let again_br = get(
        &site,
        JS,
        &[("if-none-match", tags[2]), ("accept-encoding", "br")],
    )
    .expect("304");
    assert_eq!(again_br.status(), StatusCode::NOT_MODIFIED);
    let weak = format!("W/{}", tags[0]);
    let listed = format!("\"other\", {weak}");
    assert_eq!(
        get(&site, JS, &[("if-none-match", &listed)])
            .expect("r")
            .status(),
        304
    );
    // The gzip body's tag does not validate the brotli one.
    let changed = get(
        &site,
        JS,
        &[("if-none-match", tags[1]), ("accept-encoding", "br")],
    );
    assert_eq!(changed.expect("200").status(), StatusCode::OK);
}

#[test]
fn if_modified_since_gives_304_unless_if_none_match_says_otherwise() {
    let f = fixture();
    let site = app_site(&f);
    let resp = get(&site, "/robots.txt", &[]).expect("robots");
    let lm = hdr(&resp, "last-modified").expect("lm").to_string();
    assert_eq!(
        get(&site, "/robots.txt", &[("if-modified-since", &lm)])
            .expect("r")
            .status(),
        304
    );
    let earlier = httpdate::fmt_http_date(
        httpdate::parse_http_date(&lm).expect("date") - Duration::from_secs(3600),
    );
    let r = get(&site, "/robots.txt", &[("if-modified-since", &earlier)]).expect("r");
    assert_eq!(r.status(), StatusCode::OK);
    let r = get(
        &site,
        "/robots.txt",
        &[("if-modified-since", &lm), ("if-none-match", "\"x\"")],
    );
    assert_eq!(
        r.expect("r").status(),
        StatusCode::OK,
        "If-None-Match decides"
    );
    let r = get(&site, "/robots.txt", &[("if-modified-since", "yesterday")]).expect("r");
    assert_eq!(r.status(), StatusCode::OK);
}

#[test]
fn a_single_range_gives_206_and_an_unsatisfiable_one_416() {
    let f = fixture();
    let site = app_site(&f);
    let r = get(
        &site,
        JS,
        &[("range", "bytes=10-19"), ("accept-encoding", "br")],
    )
    .expect("206");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body(), &f.js.as_bytes()[10..20]);
    assert_eq!(
        hdr(&r, "content-range"),
        Some(format!("bytes 10-19/{}", f.js.len()).as_str())
    );
    assert_eq!(hdr(&r, "content-length"), Some("10"));
    assert_eq!(
        hdr(&r, "content-encoding"),
        None,
        "ranges are of the identity bytes"
    );
    let tail = get(&site, JS, &[("range", "bytes=-5")]).expect("tail");
    assert_eq!(tail.body(), &f.js.as_bytes()[f.js.len() - 5..]);
    let past = format!("bytes={}-", f.js.len());
    let r = get(&site, JS, &[("range", &past)]).expect("416");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        hdr(&r, "content-range"),
        Some(format!("bytes */{}", f.js.len()).as_str())
    );
    assert!(r.body().is_empty());
    let multi = get(&site, JS, &[("range", "bytes=0-1,4-5")]).expect("200");
    assert_eq!(
        (multi.status(), multi.body().len()),
        (StatusCode::OK, f.js.len())
    );
    // If-Range with another validator: the whole (current) file.
    let stale = get(
        &site,
        JS,
        &[("range", "bytes=0-1"), ("if-range", "\"old\"")],
    )
    .expect("200");
    assert_eq!(stale.status(), StatusCode::OK);
    let etag = hdr(&get(&site, JS, &[]).expect("r"), "etag")
        .expect("etag")
        .to_string();
    let fresh = get(&site, JS, &[("range", "bytes=0-1"), ("if-range", &etag)]).expect("206");
    assert_eq!(fresh.status(), StatusCode::PARTIAL_CONTENT);
}

#[test]
fn precompressed_bodies_follow_accept_encoding_and_decompress_to_the_original() {
    let f = fixture();
    let site = app_site(&f);
    let br = get(&site, JS, &[("accept-encoding", "gzip, deflate, br")]).expect("br");
    assert_eq!(hdr(&br, "content-encoding"), Some("br"));
    assert_eq!(
        hdr(&br, "content-length"),
        Some(br.body().len().to_string().as_str())
    );
    let mut out = Vec::new();
    brotli::Decompressor::new(&br.body()[..], 4096)
        .read_to_end(&mut out)
        .expect("unbrotli");
    assert_eq!(out, f.js.as_bytes());
    let gz = get(&site, JS, &[("accept-encoding", "gzip, br;q=0")]).expect("gz");
    assert_eq!(hdr(&gz, "content-encoding"), Some("gzip"));
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz.body()[..])
        .read_to_end(&mut out)
        .expect("gunzip");
    assert_eq!(out, f.js.as_bytes());
    let none = get(&site, JS, &[("accept-encoding", "gzip;q=0, br;q=0")]).expect("identity");
    assert_eq!(hdr(&none, "content-encoding"), None);
    assert_eq!(none.body(), f.js.as_bytes());
    // An image has no variants: identity whatever is accepted.
    let png = get(&site, "/img/logo.png", &[("accept-encoding", "br, gzip")]).expect("png");
    assert_eq!(hdr(&png, "content-encoding"), None);
}

#[test]
fn hashed_names_are_immutable_and_the_rest_no_cache() {
    let f = fixture();
    let site = app_site(&f);
    let cc = |path| hdr(&get(&site, path, &[]).expect("r"), "cache-control").map(str::to_owned);
    assert_eq!(
        cc(JS).as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(cc("/").as_deref(), Some("no-cache"));
    assert_eq!(cc("/index.html").as_deref(), Some("no-cache"));
    assert_eq!(cc("/robots.txt").as_deref(), Some("no-cache"));
}

#[test]
fn directories_serve_their_index_and_redirect_without_the_slash() {
    let f = fixture();
    let site = app_site(&f);
    let root = get(&site, "/", &[]).expect("root");
    assert!(root.body().starts_with(b"<!doctype html><title>home"));
    assert_eq!(hdr(&root, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(
        get(&site, "/docs/", &[]).expect("docs").body(),
        "<h1>docs</h1>"
    );
    let r = get(&site, "/docs?x=1", &[]).expect("redirect");
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(hdr(&r, "location"), Some("/docs/?x=1"));
    assert!(
        get(&site, "/img/", &[]).is_none(),
        "a folder without index.html is the app's"
    );
}

#[test]
fn misses_go_to_the_app_or_are_404_on_a_static_only_site() {
    let f = fixture();
    assert!(get(&app_site(&f), "/api/users", &[]).is_none());
    assert!(get(&app_site(&f), "/missing.js", &[]).is_none());
    let only = site(
        &f,
        SiteConfig {
            has_app: false,
            ..SiteConfig::default()
        },
    );
    let r = get(&only, "/missing.js", &[]).expect("404");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(hdr(&r, "x-hoist-static"), Some("hit"));
}

#[test]
fn spa_serves_the_root_index_for_paths_that_do_not_look_like_files() {
    let f = fixture();
    let spa = site(
        &f,
        SiteConfig {
            spa: true,
            has_app: false,
            ..SiteConfig::default()
        },
    );
    let r = get(&spa, "/users/42/edit", &[]).expect("fallback");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.body().starts_with(b"<!doctype html><title>home"));
    assert_eq!(hdr(&r, "cache-control"), Some("no-cache"));
    let miss = get(&spa, "/assets/missing-AbC123.js", &[]).expect("answered");
    assert_eq!(
        miss.status(),
        StatusCode::NOT_FOUND,
        "a missing file is a miss"
    );
    // With an app: a browser's navigation gets the page, an API call goes to the app.
    let with_app = site(
        &f,
        SiteConfig {
            spa: true,
            ..SiteConfig::default()
        },
    );
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let r = get(&with_app, "/users/42", &[("accept", html)]).expect("navigation");
    assert!(r.body().starts_with(b"<!doctype html><title>home"));
    assert!(get(&with_app, "/api/users", &[]).is_none());
    assert!(get(&with_app, "/api/users", &[("accept", "application/json")]).is_none());
    assert!(
        with_app
            .respond(&req("POST", "/users/42", &[("accept", html)]))
            .is_none()
    );
}

#[test]
fn a_prefix_is_honoured() {
    let f = fixture();
    let site = site(
        &f,
        SiteConfig {
            prefix: "/static/".into(),
            ..SiteConfig::default()
        },
    );
    assert_eq!(
        get(&site, "/static/robots.txt", &[]).expect("r").body(),
        "User-agent: *\n"
    );
    assert!(get(&site, "/robots.txt", &[]).is_none());
    assert!(get(&site, "/staticrobots.txt", &[]).is_none());
    assert_eq!(
        get(&site, "/static", &[]).expect("r").status(),
        StatusCode::MOVED_PERMANENTLY
    );
    assert!(
        get(&site, "/static/", &[])
            .expect("index")
            .body()
            .starts_with(b"<!doctype")
    );
    assert!(
        Site::new(
            f.store.clone(),
            f.manifest.clone(),
            SiteConfig {
                prefix: "static".into(),
                ..SiteConfig::default()
            }
        )
        .is_err()
    );
    assert!(
        Site::new(
            f.store.clone(),
            f.manifest.clone(),
            SiteConfig {
                prefix: "/a/../b".into(),
                ..SiteConfig::default()
            }
        )
        .is_err()
    );
}

#[test]
fn traversal_and_odd_paths_never_serve_anything() {
    let f = fixture();
    let app = app_site(&f);
    let only = site(
        &f,
        SiteConfig {
            has_app: false,
            spa: true,
            ..SiteConfig::default()
        },
    );
    for uri in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2E%2E/%2e%2e/secret.txt",
        "/assets%2f..%2f..%2fsecret.txt",
        "/assets%2Findex-BcD3fG.js",
        "/robots.txt%00.js",
        "/%00",
        "/robots%5c..%5c..%5csecret.txt",
        "/%ff%fe",
    ] {
        assert!(
            app.respond(&req("GET", uri, &[])).is_none(),
            "{uri} is not a static file"
        );
        let r = only.respond(&req("GET", uri, &[])).expect("answered");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{uri}");
        assert!(!r.body().windows(7).any(|w| w == b"outside"), "{uri}");
    }
}

#[test]
fn an_earlier_deployment_answers_its_hashed_files_until_its_time() {
    let s = Scratch::new("earlier");
    s.write("v1/index.html", "v1 page");
    s.write("v1/assets/index-AbC12345.js", "old chunk");
    s.write("v1/plain.js", "old plain");
    s.write("v2/index.html", "v2 page");
    s.write("v2/assets/index-XyZ98765.js", "new chunk");
    let store = Arc::new(Store::open(s.path().join("store")).expect("store"));
    let v1 = store
        .ingest(&s.path().join("v1"), &Limits::default())
        .expect("v1");
    let v2 = store
        .ingest(&s.path().join("v2"), &Limits::default())
        .expect("v2");
    let later = SystemTime::now() + Duration::from_secs(600);
    let site = Site::new(store.clone(), v2.clone(), SiteConfig::default())
        .expect("site")
        .with_earlier(v1.clone(), later);
    assert_eq!(get(&site, "/", &[]).expect("index").body(), "v2 page");
    assert_eq!(
        get(&site, "/assets/index-XyZ98765.js", &[])
            .expect("new")
            .body(),
        "new chunk"
    );
    assert_eq!(
        get(&site, "/assets/index-AbC12345.js", &[])
            .expect("old")
            .body(),
        "old chunk"
    );
    assert!(
        get(&site, "/plain.js", &[]).is_none(),
        "only hashed files outlive their deploy"
    );
    let expired = Site::new(store, v2, SiteConfig::default())
        .expect("site")
        .with_earlier(v1, SystemTime::now() - Duration::from_secs(1));
    assert!(get(&expired, "/assets/index-AbC12345.js", &[]).is_none());
}

#[test]
fn a_hot_file_is_answered_from_memory_by_clones_of_one_buffer() {
    let f = fixture();
    let site = app_site(&f);
    let a = get(&site, JS, &[]).expect("a");
    // The object removed from disk: a cached body is still served, from the same memory.
    let entry = f.manifest.get(JS).expect("entry");
    std::fs::remove_file(
        f.store
            .object_path(&entry.hash, crate::compress::Encoding::Identity),
    )
    .expect("rm");
    let b = get(&site, JS, &[]).expect("b");
    assert_eq!(a.body().as_ptr(), b.body().as_ptr());
    let range = get(&site, JS, &[("range", "bytes=100-")]).expect("range");
    assert_eq!(range.body().as_ptr(), a.body()[100..].as_ptr());
}
