use std::fmt;
use std::str::FromStr;

use crate::SpecError;

const FIELD: &str = "name";
const MAX_LEN: usize = 63;

/// A service name.
///
/// It is a DNS label because it becomes a hostname (`<name>.<domain>`) and part of container and
/// directory names, so anything a resolver or a filesystem would choke on is refused up front.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName(String);

impl ServiceName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Validates a candidate name, returning the rule it breaks.
    fn check(name: &str) -> Result<(), &'static str> {
        if name.is_empty() {
            return Err("must not be empty");
        }
        if name.len() > MAX_LEN {
            return Err("must be at most 63 characters");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err("may only contain lowercase letters a-z, digits 0-9 and '-'");
        }
        if !name.as_bytes()[0].is_ascii_lowercase() {
            return Err("must start with a lowercase letter");
        }
        if name.ends_with('-') {
            return Err("must not end with '-'");
        }
        Ok(())
    }

    /// Derives a default name from a deploy source so `hoist deploy ./my_app` or
    /// `hoist deploy https://github.com/me/My.App.git` need no `--name`.
    pub fn derive_from_source(source: &str) -> Result<ServiceName, SpecError> {
        // ':' is a separator too so that scp-style URLs (`git@host:repo.git`) work.
        let trimmed = source.trim().trim_end_matches(['/', '\\']);
        let last = trimmed.rsplit(['/', '\\', ':']).next().unwrap_or_default();
        let lower = last.to_lowercase();
        let stem = lower.strip_suffix(".git").unwrap_or(&lower);

        let mut slug = String::with_capacity(stem.len());
        for c in stem.chars() {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                slug.push(c);
            } else if !slug.ends_with('-') {
                slug.push('-');
            }
        }
        let slug = slug.trim_start_matches(|c: char| !c.is_ascii_lowercase());
        // The slug is pure ASCII here, so slicing by bytes cannot split a character.
        let slug = &slug[..slug.len().min(MAX_LEN)];
        let slug = slug.trim_end_matches('-');

        if slug.is_empty() {
            return Err(SpecError::invalid(
                FIELD,
                source,
                "cannot derive a service name from this source (it needs at least one letter); pass --name",
            ));
        }
        ServiceName::try_from(slug)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for ServiceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ServiceName {
    type Error = SpecError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        match Self::check(&value) {
            Ok(()) => Ok(ServiceName(value)),
            Err(rule) => Err(SpecError::invalid(FIELD, value, rule)),
        }
    }
}

impl TryFrom<&str> for ServiceName {
    type Error = SpecError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        ServiceName::try_from(value.to_owned())
    }
}

impl FromStr for ServiceName {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceName::try_from(s)
    }
}

serde_via_str!(ServiceName);

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(name: &str) -> String {
        match ServiceName::try_from(name) {
            Err(SpecError::Invalid { field, rule, .. }) => {
                assert_eq!(field, "name");
                rule
            }
            other => panic!("expected invalid name for {name:?}, got {other:?}"),
        }
    }

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "api", "my-app", "app2", "a-1-b", &"a".repeat(63)] {
            let name: ServiceName = ok.parse().unwrap();
            assert_eq!(name.as_str(), ok);
            assert_eq!(name.to_string(), ok);
        }
        assert!(ServiceName::try_from(String::from("web")).is_ok());
    }

    #[test]
    fn rejects_bad_names_with_rule() {
        assert!(rule_of("").contains("empty"));
        assert!(rule_of(&"a".repeat(64)).contains("63"));
        assert!(rule_of("My-App").contains("lowercase"));
        assert!(rule_of("my_app").contains("lowercase"));
        assert!(rule_of("my.app").contains("lowercase"));
        assert!(rule_of("1app").contains("start with a lowercase letter"));
        assert!(rule_of("-app").contains("start with a lowercase letter"));
        assert!(rule_of("app-").contains("end with '-'"));
        assert!(rule_of("ápp").contains("lowercase"));
    }

    #[test]
    fn error_message_names_field() {
        let err = ServiceName::try_from("Bad").unwrap_err();
        assert!(err.to_string().starts_with("invalid name 'Bad': "), "{err}");
    }

    #[test]
    fn derive_from_source_variants() {
        let cases = [
            ("https://github.com/me/my-app.git", "my-app"),
            ("https://github.com/me/my-app.git/", "my-app"),
            ("https://github.com/me/my-app/", "my-app"),
            ("git@github.com:me/My_App.git", "my-app"),
            ("git@github.com:repo.git", "repo"),
            ("./projects/Hello World!!", "hello-world"),
            ("/srv/apps/api", "api"),
            ("../123-service", "service"),
            ("/tmp/app__", "app"),
            ("~/code/Foo.Bar.GIT", "foo-bar"),
            ("C:\\code\\thing", "thing"),
            ("  /x/web  ", "web"),
        ];
        for (source, expected) in cases {
            let name = ServiceName::derive_from_source(source).unwrap();
            assert_eq!(name.as_str(), expected, "source {source:?}");
        }
    }

    #[test]
    fn derive_truncates_to_63_and_retrims() {
        let long = format!("/x/{}-{}", "a".repeat(62), "b".repeat(10));
        let name = ServiceName::derive_from_source(&long).unwrap();
        assert_eq!(name.as_str(), "a".repeat(62));
        let long = format!("/x/{}", "c".repeat(100));
        assert_eq!(
            ServiceName::derive_from_source(&long)
                .unwrap()
                .as_str()
                .len(),
            63
        );
    }

    #[test]
    fn derive_fails_when_nothing_is_left() {
        for source in ["", "/", "./123", "https://host/___.git", "git@host:"] {
            let err = ServiceName::derive_from_source(source).unwrap_err();
            assert_eq!(err.field(), Some("name"), "{source:?}");
            assert!(err.to_string().contains("--name"));
        }
    }

    #[test]
    fn serde_roundtrip_and_validation() {
        let name: ServiceName = "web".parse().unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"web\"");
        let back: ServiceName = serde_json::from_str("\"web\"").unwrap();
        assert_eq!(back, name);
        let err = serde_json::from_str::<ServiceName>("\"Web\"").unwrap_err();
        assert!(err.to_string().contains("invalid name 'Web'"), "{err}");
    }
}
