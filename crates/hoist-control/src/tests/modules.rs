//! The crate's modules import one another without a circle: the platform (the composition
//! root) imports only parts that do not import it, and no part imports one that imports it
//! back, directly or round a longer loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The modules named after `crate::` in `code`: `crate::env::x`, `crate::{A, b::C}`, and
/// names the crate root re-exports (`crate::Platform`), looked up in `reexports`.
fn imported(code: &str, reexports: &BTreeMap<String, String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut name = |first: &str| {
        let first = first.trim();
        if first.is_empty() {
            return;
        }
        if first.starts_with(char::is_uppercase) {
            if let Some(m) = reexports.get(first) {
                out.insert(m.clone());
            }
        } else {
            out.insert(first.to_string());
        }
    };
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    name(item.split("::").next().unwrap_or(""));
                }
                rest = &group[end..];
            } else {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                name(&rest[..end]);
                rest = &rest[end..];
            }
        }
    }
    out
}

/// `pub use module::{A, B};` and `pub use module::A;` of lib.rs: name → module.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, names)) = rest.trim_end_matches(';').split_once("::") else {
            continue;
        };
        for n in names.trim_matches(|c| c == '{' || c == '}').split(',') {
            out.insert(n.trim().to_string(), module.to_string());
        }
    }
    out
}

fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut c = path[i..].to_vec();
            c.push(m.to_string());
            return Some(c);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|m| visit(m, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("reading lib.rs");
    let reexports = reexports(&lib);
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(&src).expect("listing src") {
        let path = entry.expect("a directory entry").path();
        let Some(module) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".rs"))
        else {
            continue;
        };
        if module == "lib" {
            continue;
        }
        let code = std::fs::read_to_string(&path).expect("reading a module");
        let mut uses = imported(&code, &reexports);
        uses.remove(module);
        graph.insert(module.to_string(), uses);
    }
    // The parser sees imports at all: the pipeline drives the platform.
    assert!(graph.contains_key("platform") && graph["pipeline"].contains("platform"));
    assert_eq!(
        cycle(&graph),
        None,
        "modules import each other round a loop"
    );
}
