use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::SpecError;

const FIELD: &str = "port";
const RULE: &str = "must be a number between 1 and 65535";

/// The TCP port a service listens on inside its container.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub struct Port(u16);

impl Port {
    /// 8080 because it is what most framework templates (and Leapcell) default to.
    pub const DEFAULT: u16 = 8080;

    pub fn new(port: u16) -> Result<Port, SpecError> {
        if port == 0 {
            // Port 0 means "pick any" to the kernel, which the gateway could never find.
            Err(SpecError::invalid(FIELD, "0", RULE))
        } else {
            Ok(Port(port))
        }
    }

    /// Converts a wider integer (as found in YAML/TOML), keeping the original in the error.
    pub fn from_i64(port: i64) -> Result<Port, SpecError> {
        u16::try_from(port)
            .map_err(|_| SpecError::invalid(FIELD, port.to_string(), RULE))
            .and_then(Port::new)
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

impl Default for Port {
    fn default() -> Self {
        Port(Self::DEFAULT)
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Port {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        // u16's parser accepts a leading '+', which nobody means in a port.
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SpecError::invalid(FIELD, text, RULE));
        }
        let port = text
            .parse::<u16>()
            .map_err(|_| SpecError::invalid(FIELD, text, RULE))?;
        Port::new(port)
    }
}

impl TryFrom<u16> for Port {
    type Error = SpecError;

    fn try_from(port: u16) -> Result<Self, Self::Error> {
        Port::new(port)
    }
}

impl From<Port> for u16 {
    fn from(port: Port) -> u16 {
        port.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_ports() {
        assert_eq!(Port::new(1).unwrap().get(), 1);
        assert_eq!(Port::new(65535).unwrap().get(), 65535);
        assert_eq!("8080".parse::<Port>().unwrap().get(), 8080);
        assert_eq!(" 3000 ".parse::<Port>().unwrap().get(), 3000);
        assert_eq!(Port::from_i64(443).unwrap().get(), 443);
        assert_eq!(Port::default().get(), 8080);
        assert_eq!(Port::new(80).unwrap().to_string(), "80");
    }

    #[test]
    fn rejects_bad_ports_naming_field() {
        for bad in ["0", "65536", "-1", "+80", "80a", "", "http"] {
            let err = bad.parse::<Port>().unwrap_err();
            assert!(
                err.to_string().starts_with("invalid port '"),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().contains("between 1 and 65535"));
        }
        assert!(Port::new(0).is_err());
        assert_eq!(
            Port::from_i64(70000).unwrap_err().to_string(),
            "invalid port '70000': must be a number between 1 and 65535"
        );
        assert!(Port::from_i64(-5).is_err());
    }

    #[test]
    fn serde_as_number() {
        let port = Port::new(8080).unwrap();
        assert_eq!(serde_json::to_string(&port).unwrap(), "8080");
        assert_eq!(serde_json::from_str::<Port>("8080").unwrap(), port);
        let err = serde_json::from_str::<Port>("0").unwrap_err();
        assert!(err.to_string().contains("invalid port '0'"), "{err}");
        assert!(serde_json::from_str::<Port>("70000").is_err());
    }
}
