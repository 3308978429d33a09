//! Signatures and payloads of the three hosts, built as each host builds them.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::*;

const SECRET: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const AFTER: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn sign(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, body).finalize().into_bytes())
}

fn push_body() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": AFTER,
        "repository": {"full_name": "me/app"},
        "commits": [
            {"id": AFTER, "added": ["api/new.py"], "modified": ["README.md"], "removed": []},
            {"id": AFTER, "added": [], "modified": ["api/new.py"], "removed": ["old.txt"]}
        ]
    }))
    .unwrap()
}

#[test]
fn the_hmac_matches_a_known_vector() {
    // RFC 4231, test case 2.
    let mac = hmac_sha256("Jefe", b"what do ya want for nothing?");
    assert_eq!(
        hex::encode(mac.finalize().into_bytes()),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn github_signatures_are_checked() {
    let body = push_body();
    let good = format!("sha256={}", sign(SECRET, &body));
    let h = headers(&[("x-hub-signature-256", &good)]);
    assert!(verify(Provider::Github, &h, &body, SECRET).is_ok());
    // Signed with another secret, over another body, without the prefix, or missing.
    let other = format!("sha256={}", sign("another secret", &body));
    let tampered = format!("sha256={}", sign(SECRET, b"{}"));
    for bad in [
        headers(&[("x-hub-signature-256", &other)]),
        headers(&[("x-hub-signature-256", &tampered)]),
        headers(&[("x-hub-signature-256", &sign(SECRET, &body))]),
        headers(&[("x-hub-signature-256", "sha256=zz")]),
        headers(&[("x-hub-signature", &good)]),
        HeaderMap::new(),
    ] {
        let e = verify(Provider::Github, &bad, &body, SECRET).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED, "{bad:?}");
    }
}

#[test]
fn gitea_and_forgejo_signatures_are_checked() {
    let body = push_body();
    let good = sign(SECRET, &body);
    for name in ["x-gitea-signature", "x-forgejo-signature"] {
        let h = headers(&[(name, &good)]);
        assert!(verify(Provider::Gitea, &h, &body, SECRET).is_ok(), "{name}");
    }
    let wrong = sign("nope", &body);
    for bad in [headers(&[("x-gitea-signature", &wrong)]), HeaderMap::new()] {
        let e = verify(Provider::Gitea, &bad, &body, SECRET).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    }
}

#[test]
fn gitlab_tokens_are_checked() {
    let body = push_body();
    assert!(
        verify(
            Provider::Gitlab,
            &headers(&[("x-gitlab-token", SECRET)]),
            &body,
            SECRET
        )
        .is_ok()
    );
    for bad in [
        headers(&[("x-gitlab-token", &SECRET[1..])]),
        headers(&[("x-gitlab-token", "")]),
        HeaderMap::new(),
    ] {
        let e = verify(Provider::Gitlab, &bad, &body, SECRET).unwrap_err();
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
    }
}

#[test]
fn a_push_is_read_with_its_delivery_and_changed_files() {
    let body = push_body();
    for (provider, h) in [
        (
            Provider::Github,
            headers(&[("x-github-event", "push"), ("x-github-delivery", "d-gh")]),
        ),
        (
            Provider::Gitlab,
            headers(&[
                ("x-gitlab-event", "Push Hook"),
                ("x-gitlab-event-uuid", "d-gl"),
            ]),
        ),
        (
            Provider::Gitea,
            headers(&[("x-gitea-event", "push"), ("x-gitea-delivery", "d-gt")]),
        ),
    ] {
        let Delivery::Push(push) = parse(provider, &h, &body).unwrap() else {
            panic!("{provider:?}: not read as a push");
        };
        assert_eq!(push.git_ref, "refs/heads/main");
        assert_eq!(push.after, AFTER);
        assert!(push.delivery.starts_with("d-"), "{provider:?}");
        assert_eq!(
            push.files,
            Some(vec![
                "README.md".to_string(),
                "api/new.py".to_string(),
                "old.txt".to_string()
            ])
        );
    }
}

#[test]
fn pings_other_events_and_bad_bodies() {
    let ping = headers(&[("x-github-event", "ping")]);
    assert_eq!(
        parse(Provider::Github, &ping, b"{}").unwrap(),
        Delivery::Ping
    );
    let pr = headers(&[("x-github-event", "pull_request")]);
    assert_eq!(
        parse(Provider::Github, &pr, b"{}").unwrap(),
        Delivery::Other("pull_request".into())
    );
    let push = headers(&[("x-github-event", "push"), ("x-github-delivery", "d1")]);
    let e = parse(Provider::Github, &push, b"not json").unwrap_err();
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert!(e.error.contains("not JSON"), "{}", e.error);
    let e = parse(Provider::Github, &push, br#"{"after": "abc"}"#).unwrap_err();
    assert!(e.error.contains("ref"), "{}", e.error);
    let e = parse(
        Provider::Github,
        &push,
        br#"{"ref": "refs/heads/main", "after": 5}"#,
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("after"), "{}", e.error);
    let e = parse(
        Provider::Github,
        &push,
        br#"{"ref": "refs/heads/main", "after": "x", "commits": [{"added": "a.py"}]}"#,
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("commits"), "{}", e.error);
    let e = parse(
        Provider::Github,
        &push,
        br#"{"ref": "refs/heads/main", "after": "not-a-sha"}"#,
    )
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("after"));
    // No commits listed (a force push): which files changed is not known.
    let body = format!(r#"{{"ref": "refs/heads/main", "after": "{AFTER}"}}"#);
    let Delivery::Push(p) = parse(Provider::Github, &push, body.as_bytes()).unwrap() else {
        panic!("not a push");
    };
    assert_eq!(p.files, None);
}
