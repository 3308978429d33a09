use std::io::Read;
use std::os::unix::ffi::OsStrExt;

use super::{Scratch, text};
use crate::compress::Encoding;
use crate::{Limits, Manifest, SkipReason, StaticError, Store};

fn store(scratch: &Scratch) -> Store {
    Store::open(scratch.path().join("store")).expect("store")
}

fn objects(store: &Store) -> usize {
    let mut n = 0;
    for shard in std::fs::read_dir(store.root().join("objects")).expect("objects") {
        n += std::fs::read_dir(shard.expect("shard").path())
            .expect("shard")
            .count();
    }
    n
}

#[test]
fn files_are_stored_by_hash_with_compressed_variants_that_decompress_to_the_original() {
    let s = Scratch::new("variants");
    let js = text("a", 20);
    s.write("site/assets/app.3f9c1a2b.js", &js);
    s.write("site/index.html", "<!doctype html><title>x</title>");
    // A PNG's bytes are not compressed again, however well they would compress.
    s.write("site/logo.png", vec![0u8; 4096]);
    let store = store(&s);
    let m = store
        .ingest(&s.path().join("site"), &Limits::default())
        .expect("ingest");
    assert_eq!(m.files(), 3);
    assert_eq!(m.bytes(), js.len() as u64 + 31 + 4096);

    let app = m.get("/assets/app.3f9c1a2b.js").expect("app");
    assert_eq!(app.content_type, "text/javascript; charset=utf-8");
    let (gz, br) = (app.gzip.expect("gzip kept"), app.br.expect("br kept"));
    assert!(gz < app.size && br < app.size, "{gz} {br} {}", app.size);

    let raw = std::fs::read(store.object_path(&app.hash, Encoding::Identity)).expect("identity");
    assert_eq!(raw, js.as_bytes());
    let gz_bytes = std::fs::read(store.object_path(&app.hash, Encoding::Gzip)).expect("gz");
    assert_eq!(gz_bytes.len() as u64, gz);
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz_bytes[..])
        .read_to_end(&mut out)
        .expect("gunzip");
    assert_eq!(out, js.as_bytes());
    let br_bytes = std::fs::read(store.object_path(&app.hash, Encoding::Brotli)).expect("br");
    assert_eq!(br_bytes.len() as u64, br);
    let mut out = Vec::new();
    brotli::Decompressor::new(&br_bytes[..], 4096)
        .read_to_end(&mut out)
        .expect("unbrotli");
    assert_eq!(out, js.as_bytes());

    let png = m.get("/logo.png").expect("png");
    assert_eq!((png.gzip, png.br), (None, None));
    assert_eq!(png.content_type, "image/png");
    // A 31-byte page gains nothing from gzip's 18-byte header: not kept.
    let html = m.get("/index.html").expect("html");
    assert_eq!(html.content_type, "text/html; charset=utf-8");
    assert_eq!(html.gzip, None);
}

#[test]
fn an_unchanged_file_is_stored_once_across_ingests() {
    let s = Scratch::new("dedup");
    let shared = text("shared", 8);
    s.write("one/vendor.js", &shared);
    s.write("one/app.js", text("v1", 4));
    s.write("two/vendor.js", &shared);
    s.write("two/app.js", text("v2", 4));
    s.write("two/copy/vendor.js", &shared);
    let store = store(&s);
    let one = store
        .ingest(&s.path().join("one"), &Limits::default())
        .expect("one");
    let after_one = objects(&store);
    let two = store
        .ingest(&s.path().join("two"), &Limits::default())
        .expect("two");
    assert_eq!(
        one.get("/vendor.js").map(|e| &e.hash),
        two.get("/vendor.js").map(|e| &e.hash)
    );
    assert_eq!(two.get("/vendor.js"), two.get("/copy/vendor.js"));
    assert_eq!((one.new_files(), two.new_files()), (2, 1));
    // Only the new app.js (identity, .gz, .br) was added by the second ingest.
    assert_eq!(objects(&store), after_one + 3);
    assert!(
        std::fs::read_dir(store.root().join("tmp"))
            .expect("tmp")
            .next()
            .is_none()
    );
}

#[test]
fn manifests_save_and_load_by_id_and_merge_under_a_prefix() {
    let s = Scratch::new("manifest");
    s.write("public/favicon.ico", [1u8, 2, 3]);
    s.write("next/chunks/main-8e3f1c2a5b6d7e8f.js", text("n", 2));
    let store = store(&s);
    let mut m = store
        .ingest(&s.path().join("public"), &Limits::default())
        .expect("public");
    let next = store
        .ingest(&s.path().join("next"), &Limits::default())
        .expect("next");
    m.merge_at("/_next/static", next);
    let paths: Vec<&str> = m.entries().map(|(p, _)| p).collect();
    assert_eq!(
        paths,
        [
            "/_next/static/chunks/main-8e3f1c2a5b6d7e8f.js",
            "/favicon.ico"
        ]
    );
    let id = store.save_manifest(&m).expect("save");
    assert_eq!(store.save_manifest(&m).expect("again"), id);
    let loaded: Manifest = store.load_manifest(&id).expect("load");
    assert_eq!(
        loaded.entries().collect::<Vec<_>>(),
        m.entries().collect::<Vec<_>>()
    );
    assert!("../../etc/passwd".parse::<crate::ManifestId>().is_err());
}

#[test]
fn a_folder_over_the_limits_is_refused_with_the_numbers() {
    let s = Scratch::new("limits");
    for i in 0..5 {
        s.write(&format!("site/f{i}.txt"), vec![b'x'; 100]);
    }
    let store = store(&s);
    let dir = s.path().join("site");
    match store.ingest(
        &dir,
        &Limits {
            max_bytes: 1 << 30,
            max_files: 4,
        },
    ) {
        Err(
            e @ StaticError::TooManyFiles {
                found: 5, limit: 4, ..
            },
        ) => {
            assert!(
                e.to_string()
                    .contains("holds 5 files, over the limit of 4 files"),
                "{e}"
            );
        }
        other => panic!("expected TooManyFiles, got {other:?}"),
    }
    match store.ingest(
        &dir,
        &Limits {
            max_bytes: 499,
            max_files: 100,
        },
    ) {
        Err(
            e @ StaticError::TooManyBytes {
                found: 500,
                limit: 499,
                ..
            },
        ) => {
            assert!(
                e.to_string()
                    .contains("holds 500 bytes, over the limit of 499 bytes"),
                "{e}"
            );
        }
        other => panic!("expected TooManyBytes, got {other:?}"),
    }
    assert_eq!(objects(&store), 0, "nothing is stored for a refused folder");
    assert!(
        store
            .ingest(
                &dir,
                &Limits {
                    max_bytes: 500,
                    max_files: 5
                }
            )
            .is_ok()
    );
}

#[test]
fn a_missing_folder_or_a_file_is_refused_by_name() {
    let s = Scratch::new("missing");
    let store = store(&s);
    let e = store
        .ingest(&s.path().join("dist"), &Limits::default())
        .expect_err("missing");
    assert!(matches!(e, StaticError::Missing { .. }), "{e:?}");
    assert!(e.to_string().contains("dist"), "{e}");
    let file = s.write("file", "x");
    let e = store.ingest(&file, &Limits::default()).expect_err("file");
    assert!(matches!(e, StaticError::NotADirectory { .. }), "{e:?}");
}

#[test]
fn symlinks_inside_serve_their_target_and_symlinks_out_are_never_followed() {
    let s = Scratch::new("symlinks");
    s.write("secret.txt", "outside the folder");
    s.write("site/real.txt", "inside");
    s.write("site/sub/page.html", "<p>sub</p>");
    let site = s.path().join("site");
    std::os::unix::fs::symlink("real.txt", site.join("alias.txt")).expect("link in");
    std::os::unix::fs::symlink("../secret.txt", site.join("leak.txt")).expect("link out");
    std::os::unix::fs::symlink(s.path().join("secret.txt"), site.join("abs.txt")).expect("abs");
    std::os::unix::fs::symlink("/etc", site.join("etc")).expect("dir out");
    std::os::unix::fs::symlink("sub", site.join("subdir")).expect("dir in");
    std::os::unix::fs::symlink("nowhere", site.join("dangling")).expect("dangling");
    let store = store(&s);
    let m = store.ingest(&site, &Limits::default()).expect("ingest");
    assert_eq!(
        m.get("/alias.txt").map(|e| &e.hash),
        m.get("/real.txt").map(|e| &e.hash)
    );
    for path in [
        "/leak.txt",
        "/abs.txt",
        "/etc/passwd",
        "/subdir/page.html",
        "/dangling",
    ] {
        assert!(m.get(path).is_none(), "{path} must not be in the manifest");
    }
    let mut skipped: Vec<(String, SkipReason)> = m
        .skipped()
        .iter()
        .map(|s| (s.path.clone(), s.reason.clone()))
        .collect();
    skipped.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        skipped,
        [
            ("abs.txt".to_string(), SkipReason::SymlinkOutside),
            ("dangling".to_string(), SkipReason::SymlinkOutside),
            ("etc".to_string(), SkipReason::SymlinkOutside),
            ("leak.txt".to_string(), SkipReason::SymlinkOutside),
            ("subdir".to_string(), SkipReason::SymlinkToDirectory),
        ]
    );
    // No stored object holds the outside file's bytes.
    let secret = b"outside the folder";
    for shard in std::fs::read_dir(store.root().join("objects")).expect("objects") {
        for obj in std::fs::read_dir(shard.expect("shard").path()).expect("shard") {
            assert_ne!(
                std::fs::read(obj.expect("obj").path()).expect("read"),
                secret
            );
        }
    }
}

#[test]
fn odd_file_names_are_skipped_and_reported() {
    let s = Scratch::new("names");
    s.write("site/ok.txt", "ok");
    let site = s.path().join("site");
    let odd: [&[u8]; 4] = [
        b"bad\xff.txt",
        b"new\nline.txt",
        b"back\\slash.txt",
        b"tab\t.js",
    ];
    for name in odd {
        std::fs::write(site.join(std::ffi::OsStr::from_bytes(name)), "odd").expect("odd name");
    }
    let store = store(&s);
    let m = store.ingest(&site, &Limits::default()).expect("ingest");
    assert_eq!(m.entries().map(|(p, _)| p).collect::<Vec<_>>(), ["/ok.txt"]);
    assert_eq!(m.skipped().len(), 4);
    assert!(m.skipped().iter().all(|s| s.reason == SkipReason::OddName));
}

#[test]
fn the_body_cache_keeps_to_its_budget() {
    let s = Scratch::new("cache");
    for i in 0..4 {
        s.write(&format!("site/f{i}.bin"), vec![i as u8; 1000]);
    }
    let store = Store::with_cache(s.path().join("store"), 8000).expect("store");
    let m = store
        .ingest(&s.path().join("site"), &Limits::default())
        .expect("ingest");
    for (_, e) in m.entries() {
        let body = store
            .body(&e.hash, Encoding::Identity, e.size)
            .expect("body");
        assert_eq!(body.len(), 1000);
    }
    // max entry = 1000 bytes: all fit; budget 8000 holds them all.
    assert_eq!(store.cache.held(), (4, 4000));
    let small = Store::with_cache(s.path().join("store"), 2400).expect("store");
    for (_, e) in m.entries() {
        // 2400 / 8 = 300 bytes per entry at most: none is kept, all are still served.
        assert_eq!(
            small
                .body(&e.hash, Encoding::Identity, e.size)
                .expect("body")
                .len(),
            1000
        );
    }
    assert_eq!(small.cache.held(), (0, 0));
}

#[test]
fn a_folder_over_the_file_limit_is_counted_not_held_in_memory() {
    let s = Scratch::new("keep");
    for i in 0..5 {
        s.write(&format!("site/d{}/f{i}.txt", i % 2), vec![b'x'; 10]);
    }
    let walked = crate::walk::walk(&s.path().join("site"), 2).expect("walk");
    assert_eq!(walked.count, 5, "every file counted");
    assert_eq!(walked.files.len(), 2, "only `keep` of them kept");
    assert_eq!(walked.bytes, 50, "and every byte");
}
