use std::fmt;
use std::str::FromStr;

use rand::RngExt;

use crate::SpecError;

/// Hex digits after the prefix: 40 random bits, plenty for per-host uniqueness while keeping
/// ids short enough to type and to fit in 15-byte Linux interface names.
const HEX_LEN: usize = 10;

fn random_hex() -> String {
    let bits: u64 = rand::rng().random::<u64>() & ((1 << (4 * HEX_LEN)) - 1);
    format!("{bits:0width$x}", width = HEX_LEN)
}

fn is_valid(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|hex| {
        hex.len() == HEX_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $field:literal) => {
        $(#[$doc])*
        #[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate() -> $name {
                $name(format!("{}{}", $prefix, random_hex()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = SpecError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if is_valid(s, $prefix) {
                    Ok($name(s.to_owned()))
                } else {
                    Err(SpecError::invalid(
                        $field,
                        s,
                        concat!("must be '", $prefix, "' followed by 10 lowercase hex digits"),
                    ))
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = SpecError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                value.parse()
            }
        }

        serde_via_str!($name);
    };
}

id_type!(
    /// Identifies one deployment (one build of one service), e.g. `d-0123456789`.
    DeploymentId,
    "d-",
    "deployment id"
);

id_type!(
    /// Identifies one API token (not its secret: the id is shown in listings and names the
    /// token to revoke), e.g. `tok_0123456789`.
    TokenId,
    "tok_",
    "token id"
);

id_type!(
    /// Identifies one running container, e.g. `i-0123456789`.
    InstanceId,
    "i-",
    "instance id"
);

id_type!(
    /// Identifies one uploaded source (a git bundle a client sent, kept in the server's
    /// source store), e.g. `u-0123456789`.
    UploadId,
    "u-",
    "upload"
);

impl InstanceId {
    /// The hex part alone, for names with tight length limits (network interfaces: 15 bytes).
    pub fn short(&self) -> &str {
        &self.0[Self::PREFIX.len()..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = DeploymentId::generate();
        let b = DeploymentId::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("d-"));
        assert_eq!(a.as_str().len(), 12);
        assert_eq!(a.as_str().parse::<DeploymentId>().unwrap(), a);

        let i = InstanceId::generate();
        assert!(i.as_str().starts_with("i-"));
        assert_eq!(i.to_string(), i.as_str());
        assert_eq!(i.as_str().parse::<InstanceId>().unwrap(), i);
        assert_eq!(i.short().len(), 10);
        assert_eq!(format!("i-{}", i.short()), i.as_str());
    }

    #[test]
    fn generated_ids_keep_leading_zeros() {
        for _ in 0..200 {
            assert_eq!(InstanceId::generate().short().len(), 10);
        }
    }

    #[test]
    fn parse_validates_prefix_and_hex() {
        assert!("d-0123456789".parse::<DeploymentId>().is_ok());
        assert!("d-abcdef0123".parse::<DeploymentId>().is_ok());
        for bad in [
            "",
            "d-",
            "d-012345678",
            "d-0123456789a",
            "d-ABCDEF0123",
            "d-ghijklmnop",
            "i-0123456789",
            "x-0123456789",
            "0123456789",
        ] {
            let err = bad.parse::<DeploymentId>().unwrap_err();
            assert!(
                err.to_string().starts_with("invalid deployment id '"),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().contains("'d-' followed by 10"));
        }
        let err = "d-0123456789".parse::<InstanceId>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid instance id 'd-0123456789'")
        );
        assert_eq!(
            InstanceId::try_from("i-00000000ff".to_string())
                .unwrap()
                .short(),
            "00000000ff"
        );
    }

    #[test]
    fn serde_as_string() {
        let id: DeploymentId = "d-00ff00ff00".parse().unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"d-00ff00ff00\"");
        assert_eq!(
            serde_json::from_str::<DeploymentId>("\"d-00ff00ff00\"").unwrap(),
            id
        );
        let err = serde_json::from_str::<InstanceId>("\"i-xyz\"").unwrap_err();
        assert!(err.to_string().contains("invalid instance id"), "{err}");
    }
}
