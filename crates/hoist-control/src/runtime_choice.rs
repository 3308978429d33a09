//! Which catalogued runtime version a deploy gets, and why (the reason goes into the build
//! log). In order: a version the deploy names (flag, hoist.toml, leapcell.yaml); else the
//! project's pin file; else, for a service already running on that family, the version it
//! runs on (a redeploy never moves an app to another language version by itself); else the
//! family's default.

use std::path::Path;

use hoist_core::runtime_catalog::{self, CatalogEntry, entry_for, select};
use hoist_core::runtime_pin::{Pin, parse_pin, pin_files};
use hoist_core::{Runtime, RuntimeName, SpecError};

/// The version chosen for a deploy.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeChoice {
    pub(crate) entry: &'static CatalogEntry,
    /// `from .nvmrc "22"`, `the default node`.
    pub(crate) reason: String,
    /// The pin it came from: a semver range is checked again against the exact version.
    pub(crate) pin: Option<Pin>,
}

impl RuntimeChoice {
    /// `runtime node@22 (22.23.5), from .nvmrc "22"` (the build log adds its `==> `).
    pub(crate) fn line(&self, exact: &str) -> String {
        format!(
            "runtime {} ({}), {}",
            self.entry.name(),
            hoist_build::upstream_version(exact),
            self.reason
        )
    }

    /// A warning for a version past its end of life, naming the maintained ones.
    pub(crate) fn warning(&self) -> Option<String> {
        let eol = self.entry.end_of_life?;
        self.entry
            .is_end_of_life(&runtime_catalog::today())
            .then(|| {
                format!(
                    "warning: {} reached its end of life on {eol}; name or pin a maintained version (available: {})",
                    self.entry.name(),
                    runtime_catalog::available_text(self.entry.family)
                )
            })
    }

    /// The refusal when the built version is outside the pin's range (`engines.node
    /// ">=22.30"` on a node@22 that is 22.23.5).
    pub(crate) fn check_exact(&self, exact: &str) -> Result<(), SpecError> {
        match &self.pin {
            Some(pin) if !pin.allows(hoist_build::upstream_version(exact)) => Err(SpecError::file(
                pin.file,
                format!(
                    "pins {} \"{}\", but {} is {}; available: {}",
                    self.entry.family,
                    pin.text,
                    self.entry.name(),
                    hoist_build::upstream_version(exact),
                    runtime_catalog::available_text(self.entry.family)
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// Where a deploy named its runtime, strongest first: `("--runtime", Some(node@22))`.
pub(crate) type Asked<'a> = [(&'static str, Option<&'a RuntimeName>)];

/// The choice, or `None` when nothing names or detects a family (the spec then says the
/// runtime is missing). `current` is the runtime of the service's live deployment.
pub(crate) fn choose(
    app_root: &Path,
    asked: &Asked<'_>,
    detected: Option<Runtime>,
    current: Option<&RuntimeName>,
) -> Result<Option<RuntimeChoice>, SpecError> {
    let named = asked.iter().find_map(|(place, n)| n.map(|n| (*place, n)));
    let Some(family) = named.map(|(_, n)| n.family).or(detected) else {
        return Ok(None);
    };
    let choice = |entry, reason: String, pin| Ok(Some(RuntimeChoice { entry, reason, pin }));
    if let Some((place, name)) = named
        && name.version.is_some()
    {
        return choice(select(name)?, format!("from {place} \"{name}\""), None);
    }
    for file in pin_files(family) {
        let Some(text) = crate::config_file::read_config(app_root, file)? else {
            continue;
        };
        if let Some(pin) = parse_pin(file, &text)? {
            let entry = pin.choose(family)?;
            let reason = format!("from {file} \"{}\"", pin.text);
            return choice(entry, reason, Some(pin));
        }
    }
    if let Some(current) = current.filter(|c| c.family == family)
        && let Ok(entry) = entry_for(current)
    {
        return choice(
            entry,
            "kept from the service's current deployment (no version named or pinned)".into(),
            None,
        );
    }
    let entry = runtime_catalog::default_entry(family);
    let why = match named {
        Some((place, _)) => format!("the default {family} (from {place}, no version pinned)"),
        None => format!("the default {family} (detected, no version pinned)"),
    };
    choice(entry, why, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(files: &[(&str, &str)]) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hoist-runtime-choice-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    fn pick(
        files: &[(&str, &str)],
        flag: Option<&str>,
        detected: Option<Runtime>,
        current: Option<&str>,
    ) -> Result<(String, String), SpecError> {
        let flag: Option<RuntimeName> = flag.map(|f| f.parse().unwrap());
        let current: Option<RuntimeName> = current.map(|c| c.parse().unwrap());
        let c = choose(
            &app(files),
            &[("--runtime", flag.as_ref()), ("hoist.toml", None)],
            detected,
            current.as_ref(),
        )?
        .expect("a choice");
        Ok((c.entry.name(), c.reason))
    }

    #[test]
    fn a_named_version_beats_pins_and_a_pin_beats_the_current_version() {
        let nvmrc = [(".nvmrc", "22\n")];
        let (name, why) = pick(&nvmrc, None, Some(Runtime::Node), None).unwrap();
        assert_eq!(
            (name.as_str(), why.as_str()),
            ("node@22", "from .nvmrc \"22\"")
        );
        let (name, why) = pick(&nvmrc, Some("node@20"), Some(Runtime::Node), None).unwrap();
        assert_eq!(
            (name.as_str(), why.as_str()),
            ("node@20", "from --runtime \"node@20\"")
        );
        let (name, _) = pick(&nvmrc, None, Some(Runtime::Node), Some("node")).unwrap();
        assert_eq!(name, "node@22");
    }

    #[test]
    fn with_nothing_pinned_a_service_keeps_its_version_and_a_new_one_gets_the_default() {
        let (name, why) = pick(&[], None, Some(Runtime::Node), Some("node")).unwrap();
        assert_eq!(name, "node@18");
        assert!(why.starts_with("kept from"), "{why}");
        let (name, _) = pick(&[], Some("node"), None, Some("node@22")).unwrap();
        assert_eq!(name, "node@22");
        let (name, why) = pick(&[], None, Some(Runtime::Node), None).unwrap();
        assert_eq!(name, "node@24");
        assert!(why.starts_with("the default node"), "{why}");
        // Another family than the current one's starts at that family's default.
        let (name, _) = pick(&[], Some("python"), None, Some("node@22")).unwrap();
        assert_eq!(name, "python@3.13");
    }

    #[test]
    fn bad_pins_and_unknown_versions_are_refused() {
        let err = pick(
            &[(".python-version", "2.7\n")],
            None,
            Some(Runtime::Python),
            None,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with(".python-version: pins python \"2.7\""),
            "{msg}"
        );
        assert!(msg.contains("python@3.11, python@3.13 (default)"), "{msg}");
        let err = pick(&[], Some("node@17"), None, None).unwrap_err();
        assert_eq!(err.field(), Some("runtime"));
        // A package.json without engines pins nothing; the go line of go.mod does.
        let (name, _) = pick(&[("package.json", "{}")], None, Some(Runtime::Node), None).unwrap();
        assert_eq!(name, "node@24");
        let (name, why) = pick(
            &[("go.mod", "module m\ngo 1.22\n")],
            None,
            Some(Runtime::Go),
            None,
        )
        .unwrap();
        assert_eq!(
            (name.as_str(), why.as_str()),
            ("go@1.24", "from go.mod \"go 1.22\"")
        );
    }

    #[test]
    fn an_exact_version_outside_a_range_is_refused_after_the_build() {
        let dir = app(&[("package.json", r#"{"engines":{"node":">=22.30 <23"}}"#)]);
        let c = choose(&dir, &[], Some(Runtime::Node), None)
            .unwrap()
            .unwrap();
        assert_eq!(c.entry.name(), "node@22");
        let msg = c.check_exact("22.23.5").unwrap_err().to_string();
        assert!(msg.contains("but node@22 is 22.23.5"), "{msg}");
        assert!(c.check_exact("22.31.0").is_ok());
        assert_eq!(
            c.line("22.23.5"),
            "runtime node@22 (22.23.5), from package.json \">=22.30 <23\""
        );
    }
}
