//! A project's own runtime pin: `.nvmrc`, `.node-version`, `package.json`'s `engines.node`,
//! `.python-version`, `runtime.txt`, `go.mod`'s `go` and `toolchain` lines. Parsing and the
//! choice of a catalogued version are here; reading the files out of a checkout is the
//! caller's (who must not follow a symlink out of it).

use crate::runtime_catalog::{CatalogEntry, available_text, family_entries, matching};
use crate::{Runtime, RuntimeVersion, SpecError};

/// The pin files of a family, in the order they are looked for: the first one present wins.
pub fn pin_files(family: Runtime) -> &'static [&'static str] {
    match family {
        Runtime::Node => &[".nvmrc", ".node-version", "package.json"],
        Runtime::Python => &[".python-version", "runtime.txt"],
        Runtime::Go => &["go.mod"],
        Runtime::Rust | Runtime::Debian | Runtime::PythonNode => &[],
    }
}

/// A version pin read from a project file.
#[derive(Debug, Clone)]
pub struct Pin {
    pub file: &'static str,
    /// The pin as written (`22`, `>=20 <23`, `python-3.11.4`), for messages.
    pub text: String,
    kind: PinKind,
}

#[derive(Debug, Clone)]
enum PinKind {
    /// A version line or a release in it (`22`, `v22.11.0`, `3.13`): the highest match.
    Line(RuntimeVersion),
    /// `lts/*`, `node`: the family's default or its newest.
    Default,
    Newest,
    /// `engines.node`: the highest catalogued line the range allows part of. The exact version
    /// is checked against it again once the runtime is built ([`Pin::allows`]).
    Range(node_semver::Range),
    /// `go.mod`: the module needs at least `go`; a `toolchain` line names the one to use.
    Go {
        go: RuntimeVersion,
        toolchain: Option<RuntimeVersion>,
    },
}

/// Node.js LTS code names as nvm writes them (`lts/jod`).
const NODE_LTS: &[(&str, u32)] = &[
    ("argon", 4),
    ("boron", 6),
    ("carbon", 8),
    ("dubnium", 10),
    ("erbium", 12),
    ("fermium", 14),
    ("gallium", 16),
    ("hydrogen", 18),
    ("iron", 20),
    ("jod", 22),
    ("krypton", 24),
];

/// The first line that is not blank or a `#` comment.
fn first_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
}

/// Parses `file`'s `text` into a pin; `Ok(None)` when the file pins nothing (an empty
/// `.nvmrc`, a `package.json` without `engines.node`, `.python-version` saying `system`).
pub fn parse_pin(file: &'static str, text: &str) -> Result<Option<Pin>, SpecError> {
    let pin = |text: &str, kind| {
        Ok(Some(Pin {
            file,
            text: text.to_string(),
            kind,
        }))
    };
    let bad = |value: &str, what: &str| {
        SpecError::file(
            file,
            format!("{:?} is not {what}", crate::echo(value).into_owned()),
        )
    };
    match file {
        ".nvmrc" | ".node-version" => {
            let Some(line) = first_line(text) else {
                return Ok(None);
            };
            let lower = line.to_ascii_lowercase();
            if lower == "lts/*" {
                return pin(line, PinKind::Default);
            }
            if matches!(lower.as_str(), "node" | "latest" | "current" | "stable") {
                return pin(line, PinKind::Newest);
            }
            if let Some(code) = lower.strip_prefix("lts/") {
                let major = NODE_LTS
                    .iter()
                    .find(|(name, _)| *name == code)
                    .map(|(_, m)| *m)
                    .ok_or_else(|| bad(line, "a Node.js LTS name (lts/jod, lts/krypton)"))?;
                let version = RuntimeVersion::parse(&major.to_string())
                    .ok_or_else(|| bad(line, "a Node.js version"))?;
                return pin(line, PinKind::Line(version));
            }
            let version = RuntimeVersion::parse(line)
                .ok_or_else(|| bad(line, "a Node.js version (22, v22.11.0, lts/*)"))?;
            pin(line, PinKind::Line(version))
        }
        "package.json" => {
            #[derive(serde::Deserialize)]
            struct Package {
                #[serde(default)]
                engines: Option<std::collections::BTreeMap<String, serde_json::Value>>,
            }
            let package: Package = serde_json::from_str(text)
                .map_err(|e| SpecError::file(file, format!("is not valid JSON: {e}")))?;
            let Some(node) = package.engines.as_ref().and_then(|e| e.get("node")) else {
                return Ok(None);
            };
            let Some(range) = node.as_str().map(str::trim) else {
                return Err(SpecError::file(file, "engines.node must be a string"));
            };
            if range.is_empty() {
                return Ok(None);
            }
            let parsed = node_semver::Range::parse(range)
                .map_err(|_| bad(range, "a semver range (engines.node, e.g. \">=20\")"))?;
            pin(range, PinKind::Range(parsed))
        }
        ".python-version" => {
            let Some(line) = first_line(text) else {
                return Ok(None);
            };
            if line == "system" {
                return Ok(None);
            }
            let bare = line
                .strip_prefix("cpython-")
                .or(line.strip_prefix("python-"))
                .or(line.strip_prefix("python"))
                .unwrap_or(line);
            let version = RuntimeVersion::parse(bare)
                .ok_or_else(|| bad(line, "a CPython version (3.13, 3.11.4)"))?;
            pin(line, PinKind::Line(version))
        }
        "runtime.txt" => {
            let Some(line) = first_line(text) else {
                return Ok(None);
            };
            let version = line
                .strip_prefix("python-")
                .and_then(RuntimeVersion::parse)
                .ok_or_else(|| bad(line, "a Python version as python-3.11.4"))?;
            pin(line, PinKind::Line(version))
        }
        "go.mod" => parse_go_mod(text),
        _ => Ok(None),
    }
}

/// `go 1.22` (or `go 1.22.3`) and `toolchain go1.24.2` of a go.mod.
fn parse_go_mod(text: &str) -> Result<Option<Pin>, SpecError> {
    let file = "go.mod";
    let mut go = None;
    let mut toolchain = None;
    for line in text.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("go"), Some(v)) => go = Some(v.to_string()),
            (Some("toolchain"), Some(v)) => toolchain = Some(v.to_string()),
            _ => {}
        }
    }
    let Some(go_text) = go else {
        return Ok(None);
    };
    // A pre-release (`1.21rc1`) names the line it leads to.
    let version = |v: &str| {
        let end = v
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(v.len());
        RuntimeVersion::parse(v[..end].trim_end_matches('.'))
    };
    let go_version = version(&go_text).ok_or_else(|| {
        SpecError::file(
            file,
            format!("`go {}` is not a Go version", crate::echo(&go_text)),
        )
    })?;
    let toolchain_version = toolchain
        .as_deref()
        .and_then(|t| t.strip_prefix("go"))
        .and_then(version);
    let text = match &toolchain {
        Some(t) => format!("go {go_text}, toolchain {t}"),
        None => format!("go {go_text}"),
    };
    Ok(Some(Pin {
        file,
        text,
        kind: PinKind::Go {
            go: go_version,
            toolchain: toolchain_version,
        },
    }))
}

/// `3.13.1` and `3.13` compare as `3.13`: Hoist has one release of each line.
fn line_key(v: &RuntimeVersion, len: usize) -> Vec<u32> {
    v.components().iter().copied().take(len).collect()
}

impl Pin {
    /// The catalogued version the pin chooses, or an error naming the file, the pin and the
    /// versions there are.
    pub fn choose(&self, family: Runtime) -> Result<&'static CatalogEntry, SpecError> {
        let versioned = || family_entries(family).filter(|e| !e.version.is_empty());
        let line = |e: &CatalogEntry| RuntimeVersion::parse(e.version);
        let found: Option<&'static CatalogEntry> = match &self.kind {
            PinKind::Line(v) => matching(family, v).into_iter().next(),
            PinKind::Default => Some(crate::runtime_catalog::default_entry(family)),
            PinKind::Newest => versioned().max_by_key(|e| line(e)),
            PinKind::Range(range) => versioned()
                .filter(|e| {
                    line(e)
                        .and_then(|l| node_semver::Range::parse(format!("{l}.x")).ok())
                        .is_some_and(|l| range.allows_any(&l))
                })
                .max_by_key(|e| line(e)),
            PinKind::Go { go, toolchain } => {
                let named = toolchain
                    .as_ref()
                    .and_then(|t| matching(family, t).into_iter().next());
                // The go line is the least the module needs; the lowest line that has it is
                // the closest to what it was written for, as Go's own toolchain switch picks.
                let least = toolchain.as_ref().map_or(go, |t| t.max(go));
                named.or_else(|| {
                    versioned()
                        .filter(|e| {
                            line(e).is_some_and(|l| {
                                let n = l.components().len();
                                l.components() >= line_key(least, n).as_slice()
                            })
                        })
                        .min_by_key(|e| line(e))
                })
            }
        };
        found.ok_or_else(|| {
            SpecError::file(
                self.file,
                format!(
                    "pins {} \"{}\", which no available version satisfies; available: {}",
                    family,
                    crate::echo(&self.text),
                    available_text(family)
                ),
            )
        })
    }

    /// Whether the runtime's exact version (`22.23.5`, once built) is one the pin allows:
    /// only a semver range can rule out the release a line has.
    pub fn allows(&self, exact: &str) -> bool {
        match &self.kind {
            PinKind::Range(range) => node_semver::Version::parse(exact)
                .map(|v| range.satisfies(&v))
                .unwrap_or(true),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choose(file: &'static str, text: &str, family: Runtime) -> Result<String, SpecError> {
        parse_pin(file, text)?
            .expect("a pin")
            .choose(family)
            .map(|e| e.name())
    }

    #[test]
    fn nvmrc_and_node_version() {
        let node = |f, t| choose(f, t, Runtime::Node).unwrap();
        assert_eq!(node(".nvmrc", "22\n"), "node@22");
        assert_eq!(node(".nvmrc", "v20.11.1"), "node@20");
        assert_eq!(node(".nvmrc", "# comment\nlts/jod\n"), "node@22");
        assert_eq!(node(".nvmrc", "lts/*"), "node@24");
        assert_eq!(node(".nvmrc", "node"), "node@24");
        assert_eq!(node(".node-version", "24.1.0"), "node@24");
        assert!(parse_pin(".nvmrc", "\n\n").unwrap().is_none());
        let err = choose(".nvmrc", "17", Runtime::Node)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(".nvmrc: pins node \"17\""), "{err}");
        assert!(err.contains("node@22, node@24 (default)"), "{err}");
        let err = parse_pin(".nvmrc", "banana").unwrap_err().to_string();
        assert!(err.starts_with(".nvmrc: \"banana\" is not"), "{err}");
    }

    #[test]
    fn engines_ranges_choose_the_highest_line_allowed() {
        let node = |t: &str| {
            choose(
                "package.json",
                &format!(r#"{{"name":"a","engines":{{"node":"{t}"}}}}"#),
                Runtime::Node,
            )
        };
        assert_eq!(node(">=18").unwrap(), "node@24");
        assert_eq!(node(">=20 <23").unwrap(), "node@22");
        assert_eq!(node("^20 || ^22").unwrap(), "node@22");
        assert_eq!(node("20.x").unwrap(), "node@20");
        assert_eq!(node("~22.11.0").unwrap(), "node@22");
        assert_eq!(node("*").unwrap(), "node@24");
        let err = node(">=26").unwrap_err().to_string();
        assert!(err.starts_with("package.json: pins node \">=26\""), "{err}");
        assert!(node("not a range!").is_err());
        assert!(
            parse_pin("package.json", r#"{"name":"a"}"#)
                .unwrap()
                .is_none()
        );
        assert!(parse_pin("package.json", "{oops").is_err());
        let pin = parse_pin("package.json", r#"{"engines":{"node":">=22.30"}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(pin.choose(Runtime::Node).unwrap().name(), "node@24");
        assert!(!pin.allows("22.23.5"));
        assert!(pin.allows("24.12.0"));
    }

    #[test]
    fn python_pins() {
        let py = |f, t| choose(f, t, Runtime::Python);
        assert_eq!(py(".python-version", "3.13\n").unwrap(), "python@3.13");
        assert_eq!(py(".python-version", "3.11.9").unwrap(), "python@3.11");
        assert_eq!(py(".python-version", "3").unwrap(), "python@3.13");
        assert_eq!(py("runtime.txt", "python-3.11.4\n").unwrap(), "python@3.11");
        assert!(parse_pin(".python-version", "system").unwrap().is_none());
        let err = py(".python-version", "3.9").unwrap_err().to_string();
        assert!(err.contains("python@3.11, python@3.13 (default)"), "{err}");
        assert!(parse_pin("runtime.txt", "3.11").is_err());
        assert!(parse_pin(".python-version", "pypy3.10").is_err());
    }

    #[test]
    fn go_mod_takes_the_least_line_that_has_the_go_version() {
        let go = |t| choose("go.mod", t, Runtime::Go);
        assert_eq!(go("module x\n\ngo 1.19\n").unwrap(), "go@1.19");
        assert_eq!(go("module x\ngo 1.22.3\n").unwrap(), "go@1.24");
        assert_eq!(
            go("module x\ngo 1.19\ntoolchain go1.24.2\n").unwrap(),
            "go@1.24"
        );
        assert_eq!(go("module x\ngo 1.24 // comment\n").unwrap(), "go@1.24");
        assert_eq!(go("module x\ngo 1.21rc1\n").unwrap(), "go@1.24");
        let err = go("module x\ngo 1.30\n").unwrap_err().to_string();
        assert!(err.starts_with("go.mod: pins go \"go 1.30\""), "{err}");
        assert!(parse_pin("go.mod", "module x\n").unwrap().is_none());
    }
}
