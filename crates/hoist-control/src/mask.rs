//! Masking a service's secret values in its log lines, as CI systems do: a value of the
//! service's environment that a build or the app prints is stored and streamed as `***`.
//!
//! Values shorter than [`MIN_MASKED_LEN`] characters are left alone: `true`, `prod` or `8080`
//! cannot be told from ordinary text, and masking them would garble every line that happens to
//! hold the word.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};

/// The shortest value masked, in characters.
pub const MIN_MASKED_LEN: usize = 8;

/// What a masked value is replaced with.
pub const MASK: &str = "***";

/// Per service, the values to mask, gathered from named sources (the service env, a deploy's
/// `--env` flags while it builds) so that one changing does not drop another's.
#[derive(Clone, Default)]
pub struct Masks {
    inner: Arc<RwLock<HashMap<String, ServiceMasks>>>,
}

#[derive(Default)]
struct ServiceMasks {
    sources: HashMap<String, BTreeSet<String>>,
    /// One automaton for all the sources' values; `None` when there is nothing to mask.
    matcher: Option<AhoCorasick>,
}

impl ServiceMasks {
    fn rebuild(&mut self) {
        let values: BTreeSet<&str> = self
            .sources
            .values()
            .flatten()
            .map(String::as_str)
            .collect();
        // Leftmost-longest: of two values where one contains the other, the longer one is
        // masked whole rather than leaving its tail in the line.
        self.matcher = if values.is_empty() {
            None
        } else {
            match AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(values)
            {
                Ok(m) => Some(m),
                Err(e) => {
                    // Only a size limit of the automaton can fail, far beyond 3 KB of env.
                    tracing::error!(error = %e, "building the log mask");
                    None
                }
            }
        };
    }
}

impl Masks {
    /// Replaces the values of `source` for `service` (an empty set removes the source).
    pub fn set(&self, service: &str, source: &str, values: impl IntoIterator<Item = String>) {
        // A multi-line value (a PEM key) is printed over several log lines, each masked on
        // its own: so each of its lines is a value too.
        let values: BTreeSet<String> = values
            .into_iter()
            .flat_map(|v| {
                let lines: Vec<String> = if v.contains('\n') {
                    v.lines()
                        .map(|l| l.trim_end_matches('\r').to_string())
                        .collect()
                } else {
                    Vec::new()
                };
                std::iter::once(v).chain(lines)
            })
            .filter(|v| v.chars().count() >= MIN_MASKED_LEN)
            .collect();
        let mut all = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let masks = all.entry(service.to_string()).or_default();
        let changed = if values.is_empty() {
            masks.sources.remove(source).is_some()
        } else {
            masks.sources.insert(source.to_string(), values.clone()) != Some(values)
        };
        if changed {
            masks.rebuild();
        }
        if masks.sources.is_empty() {
            all.remove(service);
        }
    }

    /// Forgets a source (a finished deploy's flags).
    pub fn clear(&self, service: &str, source: &str) {
        self.set(service, source, std::iter::empty());
    }

    /// Forgets every value of a deleted service: a service created later under its name is
    /// someone else's, whose lines must not be masked with the old one's secrets.
    pub fn forget(&self, service: &str) {
        let mut all = self.inner.write().unwrap_or_else(|p| p.into_inner());
        all.remove(service);
    }

    /// `line` with every secret value of `service` replaced by [`MASK`].
    pub fn apply(&self, service: &str, line: &str) -> Option<String> {
        let all = self.inner.read().unwrap_or_else(|p| p.into_inner());
        mask_with(all.get(service)?.matcher.as_ref()?, line)
    }

    /// Masks each line in place, under one read of the table.
    pub fn apply_all<'a>(&self, lines: impl Iterator<Item = (&'a str, &'a mut String)>) {
        let all = self.inner.read().unwrap_or_else(|p| p.into_inner());
        if all.is_empty() {
            return;
        }
        for (service, line) in lines {
            if let Some(masked) = all
                .get(service)
                .and_then(|m| m.matcher.as_ref())
                .and_then(|m| mask_with(m, line))
            {
                *line = masked;
            }
        }
    }
}

/// `None` when nothing matched (the common case: no copy is made).
fn mask_with(matcher: &AhoCorasick, line: &str) -> Option<String> {
    matcher.find(line)?;
    let replacements = vec![MASK; matcher.patterns_len()];
    Some(matcher.replace_all(line, &replacements))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn values_of_8_characters_or_more_are_masked() {
        let masks = Masks::default();
        masks.set("shop", "env", strings(&["sk_live_4242", "prod", "1234567"]));
        assert_eq!(
            masks
                .apply("shop", "key=sk_live_4242 mode=prod pin=1234567")
                .as_deref(),
            Some("key=*** mode=prod pin=1234567")
        );
        assert_eq!(masks.apply("shop", "nothing secret"), None);
        // Another service's values are not its own.
        assert_eq!(masks.apply("blog", "key=sk_live_4242"), None);
        masks.set("shop", "env", strings(&["exactly8"]));
        assert_eq!(
            masks.apply("shop", "exactly8exactly8").as_deref(),
            Some("******")
        );
        assert_eq!(
            masks.apply("shop", "sk_live_4242"),
            None,
            "replaced, not added"
        );
    }

    #[test]
    fn the_longer_of_overlapping_values_is_masked_whole() {
        let masks = Masks::default();
        masks.set("shop", "env", strings(&["password", "password-and-more"]));
        assert_eq!(
            masks
                .apply("shop", "x password-and-more y password")
                .as_deref(),
            Some("x *** y ***")
        );
    }

    #[test]
    fn sources_are_kept_apart() {
        let masks = Masks::default();
        masks.set("shop", "env", strings(&["service-secret"]));
        masks.set("shop", "deploy d-1", strings(&["flag-secret-1"]));
        let mut lines = [
            (
                "shop".to_string(),
                "service-secret flag-secret-1".to_string(),
            ),
            ("blog".to_string(), "service-secret".to_string()),
        ];
        masks.apply_all(lines.iter_mut().map(|(s, l)| (s.as_str(), l)));
        assert_eq!(lines[0].1, "*** ***");
        assert_eq!(lines[1].1, "service-secret");

        masks.clear("shop", "deploy d-1");
        assert_eq!(
            masks
                .apply("shop", "service-secret flag-secret-1")
                .as_deref(),
            Some("*** flag-secret-1")
        );
        masks.set("shop", "env", Vec::new());
        assert_eq!(masks.apply("shop", "service-secret"), None);
        assert!(masks.inner.read().unwrap().is_empty());
    }

    #[test]
    fn a_deleted_service_s_values_are_forgotten() {
        let masks = Masks::default();
        masks.set("shop", "env", strings(&["service-secret"]));
        masks.set("shop", "deploy d-1", strings(&["flag-secret-1"]));
        masks.forget("shop");
        assert_eq!(masks.apply("shop", "service-secret flag-secret-1"), None);
        assert!(masks.inner.read().unwrap().is_empty());
    }

    #[test]
    fn each_line_of_a_multi_line_value_is_masked() {
        let masks = Masks::default();
        let pem = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcN\nLYLI\n-----END KEY-----";
        masks.set("shop", "env", strings(&[pem]));
        for line in pem.lines().filter(|l| l.len() >= MIN_MASKED_LEN) {
            assert_eq!(masks.apply("shop", line).as_deref(), Some("***"), "{line}");
        }
        // Too short to tell from ordinary text, as any value.
        assert_eq!(masks.apply("shop", "LYLI"), None);
    }
}
