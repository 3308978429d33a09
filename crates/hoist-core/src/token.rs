//! Who an API request is from and what it may do: a token's role and, for `deploy` and `read`
//! tokens, the one service it may be scoped to. The API's route table (hoist-api's `auth`)
//! says what each route needs; [`Principal::may`] is the one check.

use std::fmt;
use std::str::FromStr;

use crate::{ServiceName, SpecError, TokenId};

/// What a token may do, each role including the ones below it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::Display,
    strum::IntoStaticStr,
    strum::VariantArray,
    strum::VariantNames,
)]
#[strum(serialize_all = "lowercase")]
#[cfg_attr(
    feature = "schema",
    derive(utoipa::ToSchema),
    schema(rename_all = "lowercase")
)]
pub enum TokenRole {
    /// Everything: every service, the server, and the tokens themselves.
    Admin,
    /// Deploy and roll back, and read everything a `read` token reads.
    Deploy,
    /// Read only: services, deployments, logs, events, metrics, usage (no secret values).
    Read,
}

text_enum!(TokenRole, "role");

impl TokenRole {
    fn rank(self) -> u8 {
        match self {
            TokenRole::Read => 0,
            TokenRole::Deploy => 1,
            TokenRole::Admin => 2,
        }
    }

    /// Whether this role includes `need`.
    pub fn covers(self, need: TokenRole) -> bool {
        self.rank() >= need.rank()
    }

    /// "an admin", "a deploy", "a read": for messages that say which token is needed.
    pub fn with_article(self) -> &'static str {
        match self {
            TokenRole::Admin => "an admin",
            TokenRole::Deploy => "a deploy",
            TokenRole::Read => "a read",
        }
    }
}

const NAME_FIELD: &str = "name";
const NAME_MAX: usize = 64;

/// A token's name, unique among live tokens: what `hoist tokens ls` shows so a person knows
/// which token a CI job holds (`ci`, `github-actions-web`).
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TokenName(String);

impl TokenName {
    /// The name of the server's own admin token, whose plain text is in `DATA/admin-token`.
    /// It is reserved: the server replaces that token by name.
    pub const ADMIN: &'static str = "admin";

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The server's own admin token's name.
    pub fn admin() -> TokenName {
        TokenName(Self::ADMIN.to_string())
    }

    fn check(name: &str) -> Result<(), &'static str> {
        if name.is_empty() {
            return Err("must not be empty");
        }
        if name.len() > NAME_MAX {
            return Err("must be at most 64 characters");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err("may only contain letters, digits, '-', '_' and '.'");
        }
        if !name.as_bytes()[0].is_ascii_alphanumeric() {
            return Err("must start with a letter or a digit");
        }
        Ok(())
    }
}

impl fmt::Display for TokenName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TokenName {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TokenName::check(s)
            .map(|()| TokenName(s.to_string()))
            .map_err(|rule| SpecError::invalid(NAME_FIELD, s, rule))
    }
}

serde_via_str!(TokenName);

/// The caller of an API request: the token it was made with (directly, or through the
/// dashboard session that token started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub token: TokenId,
    pub role: TokenRole,
    /// The one service a `deploy` or `read` token is for; `None`: every service.
    pub service: Option<ServiceName>,
}

/// Why a [`Principal`] may not do something; the message says what it would need.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub String);

/// What a request touches, for the check: one service, or the whole platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over<'a> {
    /// One service (the `{name}` of the route, a deploy's target, a deployment's service).
    Service(&'a ServiceName),
    /// Every service at once, or the platform itself (`/metrics`, the token list).
    Platform,
}

impl Principal {
    /// The check of every request: `Ok` when this token has at least `need` over `over`.
    /// `action` says what the request does (`"roll back service 'web'"`), for the message.
    pub fn may(&self, need: TokenRole, over: Over<'_>, action: &str) -> Result<(), Denied> {
        if !self.role.covers(need) {
            return Err(Denied(format!(
                "this token ({self}) cannot {action}: that needs {} token",
                need.with_article()
            )));
        }
        match (&self.service, over) {
            (None, _) => Ok(()),
            (Some(own), Over::Service(s)) if own == s => Ok(()),
            (Some(own), Over::Service(_)) => Err(Denied(format!(
                "this token ({self}) cannot {action}: it is for service '{own}' only"
            ))),
            (Some(_), Over::Platform) => Err(Denied(format!(
                "this token ({self}) cannot {action}: that needs {} token for every service \
                 (one made without --service)",
                need.with_article()
            ))),
        }
    }

    /// Whether the token may see service `name` at all (a listing shows only those).
    pub fn sees(&self, name: &ServiceName) -> bool {
        self.service.as_ref().is_none_or(|s| s == name)
    }
}

/// "deploy, service web", "read, every service", "admin": how messages name a token.
impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.role, &self.service) {
            (TokenRole::Admin, _) => f.write_str("admin"),
            (role, Some(s)) => write!(f, "{role}, service {s}"),
            (role, None) => write!(f, "{role}, every service"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: TokenRole, service: Option<&str>) -> Principal {
        Principal {
            token: TokenId::generate(),
            role,
            service: service.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn each_role_covers_the_ones_below_it_only() {
        use TokenRole::*;
        for (role, covered) in [
            (Admin, &[Admin, Deploy, Read][..]),
            (Deploy, &[Deploy, Read]),
            (Read, &[Read]),
        ] {
            for need in TokenRole::ALL {
                assert_eq!(role.covers(*need), covered.contains(need), "{role} {need}");
            }
        }
        assert_eq!("deploy".parse::<TokenRole>().unwrap(), Deploy);
        let e = "owner".parse::<TokenRole>().unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid role 'owner': must be one of admin, deploy, read"
        );
    }

    #[test]
    fn a_scoped_token_reaches_its_service_only_and_the_message_says_what_it_needs() {
        let web: ServiceName = "web".parse().unwrap();
        let api: ServiceName = "api".parse().unwrap();
        let deploy = principal(TokenRole::Deploy, Some("web"));
        assert!(
            deploy
                .may(
                    TokenRole::Deploy,
                    Over::Service(&web),
                    "deploy service 'web'"
                )
                .is_ok()
        );
        assert!(
            deploy
                .may(TokenRole::Read, Over::Service(&web), "x")
                .is_ok()
        );
        let e = deploy
            .may(TokenRole::Read, Over::Service(&api), "read service 'api'")
            .unwrap_err();
        assert_eq!(
            e.0,
            "this token (deploy, service web) cannot read service 'api': it is for service \
             'web' only"
        );
        let e = deploy
            .may(TokenRole::Admin, Over::Platform, "create tokens")
            .unwrap_err();
        assert_eq!(
            e.0,
            "this token (deploy, service web) cannot create tokens: that needs an admin token"
        );
        // The role is checked before the service: the message names the missing role.
        let e = deploy
            .may(TokenRole::Admin, Over::Service(&web), "scale service 'web'")
            .unwrap_err();
        assert!(e.0.ends_with("that needs an admin token"), "{e}");
        let e = deploy
            .may(
                TokenRole::Read,
                Over::Platform,
                "read the platform's metrics",
            )
            .unwrap_err();
        assert!(e.0.contains("a read token for every service"), "{e}");
        assert!(deploy.sees(&web) && !deploy.sees(&api));
    }

    #[test]
    fn an_unscoped_token_reaches_every_service_within_its_role() {
        let api: ServiceName = "api".parse().unwrap();
        let read = principal(TokenRole::Read, None);
        assert!(read.may(TokenRole::Read, Over::Service(&api), "x").is_ok());
        assert!(read.may(TokenRole::Read, Over::Platform, "x").is_ok());
        let e = read
            .may(
                TokenRole::Deploy,
                Over::Service(&api),
                "deploy service 'api'",
            )
            .unwrap_err();
        assert_eq!(
            e.0,
            "this token (read, every service) cannot deploy service 'api': that needs a \
             deploy token"
        );
        let admin = principal(TokenRole::Admin, None);
        for need in TokenRole::ALL {
            assert!(admin.may(*need, Over::Platform, "x").is_ok());
        }
        assert!(admin.sees(&api) && read.sees(&api));
    }

    #[test]
    fn token_names_are_short_and_printable() {
        for ok in ["ci", "github-actions.web_1", "A", "0deploy"] {
            assert_eq!(ok.parse::<TokenName>().unwrap().as_str(), ok);
        }
        for (bad, rule) in [
            ("", "must not be empty"),
            ("-ci", "must start with a letter or a digit"),
            ("ci bot", "may only contain"),
            ("ci/bot", "may only contain"),
            (&"x".repeat(65), "at most 64"),
        ] {
            let e = bad.parse::<TokenName>().unwrap_err().to_string();
            assert!(
                e.contains(rule) && e.starts_with("invalid name"),
                "{bad}: {e}"
            );
        }
    }
}
