use std::collections::BTreeMap;
use std::collections::btree_map;

use serde::{Deserialize, Serialize, Serializer};

use crate::SpecError;

/// Most bytes (sum of name and value lengths) a service's environment may hold.
///
/// Env vars are meant for configuration and secrets, not data; the cap keeps specs small in the
/// store and in every API response, and matches what users know from Leapcell.
pub const ENV_TOTAL_LIMIT: usize = 3072;

const FIELD: &str = "env";
const NAME_RULE: &str = "name must match [A-Za-z_][A-Za-z0-9_]*";

/// A service's environment variables, kept sorted so specs serialize deterministically.
///
/// Errors never echo a variable's value, since values are frequently secrets.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>")]
pub struct EnvVars(BTreeMap<String, String>);

impl EnvVars {
    pub fn new() -> EnvVars {
        EnvVars::default()
    }

    /// Checks a variable name against the POSIX portable form, which every shell and runtime
    /// can read back.
    pub fn validate_name(name: &str) -> Result<(), SpecError> {
        let mut bytes = name.bytes();
        let valid = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            Ok(())
        } else {
            Err(SpecError::invalid(FIELD, name, NAME_RULE))
        }
    }

    /// execve cannot pass a value containing NUL; catch it here rather than at container start.
    fn validate_value(name: &str, value: &str) -> Result<(), SpecError> {
        if value.contains('\0') {
            Err(SpecError::invalid(
                FIELD,
                name,
                "value must not contain a NUL byte",
            ))
        } else {
            Ok(())
        }
    }

    fn size_error(name: &str, size: usize) -> SpecError {
        SpecError::invalid(
            FIELD,
            name,
            format!(
                "environment variables would total {size} bytes, over the limit of {ENV_TOTAL_LIMIT} bytes (3 KB)"
            ),
        )
    }

    /// Splits "NAME=VALUE" (as given to `--env`); only the first '=' separates, so values may
    /// contain '='.
    pub fn parse_assignment(text: &str) -> Result<(String, String), SpecError> {
        let Some((name, value)) = text.split_once('=') else {
            return Err(SpecError::invalid(
                FIELD,
                text,
                "expected NAME=VALUE (missing '=')",
            ));
        };
        Self::validate_name(name)?;
        Self::validate_value(name, value)?;
        Ok((name.to_owned(), value.to_owned()))
    }

    /// Sets a variable, returning the previous value. Leaves the map unchanged on error.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Option<String>, SpecError> {
        let name = name.into();
        let value = value.into();
        Self::validate_name(&name)?;
        Self::validate_value(&name, &value)?;
        let replaced = self.0.get(&name).map_or(0, |old| name.len() + old.len());
        let size = self.total_size() - replaced + name.len() + value.len();
        if size > ENV_TOTAL_LIMIT {
            return Err(Self::size_error(&name, size));
        }
        Ok(self.0.insert(name, value))
    }

    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.0
    }

    /// Sum of name and value lengths in bytes, the quantity [`ENV_TOTAL_LIMIT`] caps.
    pub fn total_size(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
    }

    /// Errors if the total size is over [`ENV_TOTAL_LIMIT`]; the error names the biggest
    /// variable, as that is the likeliest one to trim.
    pub fn check_size(&self) -> Result<(), SpecError> {
        let size = self.total_size();
        if size <= ENV_TOTAL_LIMIT {
            return Ok(());
        }
        let biggest = self
            .0
            .iter()
            .max_by_key(|(k, v)| k.len() + v.len())
            .map_or("", |(k, _)| k.as_str());
        Err(Self::size_error(biggest, size))
    }

    /// Adds `other`'s variables, `other` winning on conflicts.
    ///
    /// Infallible on purpose: layers are merged before the final size check in
    /// [`crate::ServiceSpec::resolve`], and a weaker layer's variable overridden later must not
    /// cause a spurious error halfway through.
    pub fn merge(&mut self, other: EnvVars) {
        self.0.extend(other.0);
    }

    /// "NAME=VALUE" strings, the form execve and the OCI process spec take.
    pub fn to_env_list(&self) -> Vec<String> {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }
}

impl TryFrom<BTreeMap<String, String>> for EnvVars {
    type Error = SpecError;

    fn try_from(map: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        for (name, value) in &map {
            Self::validate_name(name)?;
            Self::validate_value(name, value)?;
        }
        let env = EnvVars(map);
        env.check_size()?;
        Ok(env)
    }
}

impl Serialize for EnvVars {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'a> IntoIterator for &'a EnvVars {
    type Item = (&'a String, &'a String);
    type IntoIter = btree_map::Iter<'a, String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for EnvVars {
    type Item = (String, String);
    type IntoIter = btree_map::IntoIter<String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names() {
        for name in ["A", "_", "_x", "PATH", "db_url2", "a1_B2"] {
            EnvVars::validate_name(name).unwrap();
        }
    }

    #[test]
    fn invalid_names_name_field_and_rule() {
        for name in ["", "1A", "A-B", "A B", "A.B", "É", "A=B", "A\0"] {
            let err = EnvVars::validate_name(name).unwrap_err();
            let msg = err.to_string();
            assert!(msg.starts_with("invalid env '"), "{msg}");
            assert!(msg.contains("[A-Za-z_][A-Za-z0-9_]*"), "{msg}");
        }
    }

    #[test]
    fn parse_assignment_splits_on_first_equals() {
        assert_eq!(
            EnvVars::parse_assignment("K=V").unwrap(),
            ("K".into(), "V".into())
        );
        assert_eq!(
            EnvVars::parse_assignment("URL=a=b==c").unwrap(),
            ("URL".into(), "a=b==c".into())
        );
        assert_eq!(
            EnvVars::parse_assignment("EMPTY=").unwrap(),
            ("EMPTY".into(), String::new())
        );
    }

    #[test]
    fn parse_assignment_errors() {
        let err = EnvVars::parse_assignment("NOEQUALS").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid env 'NOEQUALS': expected NAME=VALUE (missing '=')"
        );
        let err = EnvVars::parse_assignment("1X=secret").unwrap_err();
        assert!(err.to_string().contains("'1X'"));
        assert!(!err.to_string().contains("secret"));
        assert!(EnvVars::parse_assignment("=V").is_err());
        let err = EnvVars::parse_assignment("K=a\0b").unwrap_err();
        assert!(err.to_string().contains("NUL"));
    }

    #[test]
    fn insert_remove_iter() {
        let mut env = EnvVars::new();
        assert!(env.is_empty());
        assert_eq!(env.insert("B", "2").unwrap(), None);
        assert_eq!(env.insert("A", "1").unwrap(), None);
        assert_eq!(env.insert("A", "one").unwrap(), Some("1".into()));
        assert_eq!(env.len(), 2);
        assert_eq!(env.get("A"), Some("one"));
        assert!(env.contains("B"));
        assert_eq!(
            env.iter().collect::<Vec<_>>(),
            vec![("A", "one"), ("B", "2")]
        );
        assert_eq!(env.to_env_list(), vec!["A=one", "B=2"]);
        assert_eq!(env.total_size(), 1 + 3 + 1 + 1);
        assert_eq!(env.remove("A"), Some("one".into()));
        assert_eq!(env.remove("A"), None);
        assert_eq!(env.len(), 1);
        assert!(env.insert("bad-name", "x").is_err());
        assert_eq!(env.len(), 1);
    }

    #[test]
    fn size_limit_is_enforced_on_insert() {
        let mut env = EnvVars::new();
        // 1 + 3071 = 3072 bytes exactly: allowed.
        env.insert("A", "x".repeat(3071)).unwrap();
        let err = env.insert("B", "").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("invalid env 'B'"), "{msg}");
        assert!(msg.contains("3073 bytes"), "{msg}");
        assert!(msg.contains("3072"), "{msg}");
        assert!(!env.contains("B"));
        // Replacing a value counts only the new value.
        env.insert("A", "y".repeat(3071)).unwrap();
        assert!(env.insert("A", "y".repeat(3072)).is_err());
        assert_eq!(env.get("A").map(str::len), Some(3071));
    }

    #[test]
    fn merge_other_wins() {
        let mut base = EnvVars::new();
        base.insert("A", "base").unwrap();
        base.insert("B", "base").unwrap();
        let mut top = EnvVars::new();
        top.insert("B", "top").unwrap();
        top.insert("C", "top").unwrap();
        base.merge(top);
        assert_eq!(
            base.iter().collect::<Vec<_>>(),
            vec![("A", "base"), ("B", "top"), ("C", "top")]
        );
    }

    #[test]
    fn check_size_after_merge() {
        let mut a = EnvVars::new();
        a.insert("A", "x".repeat(2000)).unwrap();
        let mut b = EnvVars::new();
        b.insert("BIG", "x".repeat(2000)).unwrap();
        a.merge(b);
        let err = a.check_size().unwrap_err();
        assert!(err.to_string().contains("4004 bytes"), "{err}");
        assert!(err.to_string().contains("'BIG'"), "{err}");
    }

    #[test]
    fn serde_object_with_validation() {
        let mut env = EnvVars::new();
        env.insert("B", "2").unwrap();
        env.insert("A", "1").unwrap();
        assert_eq!(serde_json::to_string(&env).unwrap(), r#"{"A":"1","B":"2"}"#);
        let back: EnvVars = serde_json::from_str(r#"{"A":"1","B":"2"}"#).unwrap();
        assert_eq!(back, env);
        let err = serde_json::from_str::<EnvVars>(r#"{"1A":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("invalid env '1A'"), "{err}");
        let big = format!(r#"{{"A":"{}"}}"#, "x".repeat(4000));
        let err = serde_json::from_str::<EnvVars>(&big).unwrap_err();
        assert!(err.to_string().contains("3072"), "{err}");
    }
}
