//! The two config files a repository may carry, read through structs that derive their keys:
//! `hoist.toml` (Hoist's own, where an unknown key is a typo and refused) and `leapcell.yaml`
//! (written for another platform, where an unknown key is that platform's and only warned
//! about, so such repositories keep deploying unchanged).
//!
//! The fields hold the file's own values (`toml::Value`, `serde_yaml_ng::Value`) rather than
//! the domain types, because one key takes several forms (`port = 8080` or `"8080"`,
//! `memory = 512` or `"1gb"`) and an error must say which key broke which rule in Hoist's
//! words, not the parser's.

mod cron_toml;
mod hoist_toml;
mod leapcell;
// hoist.toml's `static` (issue 15).
mod static_toml;

use std::fmt;

use crate::SpecError;

/// A setting of a config file that Hoist read but does not act on. Not an error: the deploy
/// goes on and prints it to the build log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub file: &'static str,
    /// The key as written (quoted as [`crate::echo`] quotes user input).
    pub key: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: key `{}` is not used by Hoist; ignored",
            self.file, self.key
        )
    }
}

/// "FILE: key `KEY`: why" for a value of `key` that broke a rule.
fn key_error<'k>(file: &'static str, key: &'k str) -> impl FnOnce(SpecError) -> SpecError + 'k {
    move |e| SpecError::file(file, format!("key `{key}`: {e}"))
}
