use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::SpecError;

const FIELD: &str = "memory";
const RANGE_RULE: &str = "must be between 128 and 7076 MB";
const FORMAT_RULE: &str = "expected a whole number of MB or GB, like 512, 512mb or 1gb";

/// A service's memory limit in MB (MiB, as cgroups count them).
///
/// The upper bound is 4 × 1769 MB: CPU is handed out proportionally to memory (see
/// [`MemoryMb::cpu_millicores`]) and four cores is the most one instance gets.
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemoryMb(u32);

impl MemoryMb {
    pub const MIN: u32 = 128;
    pub const MAX: u32 = 7076;
    pub const DEFAULT: u32 = 512;

    /// MB that buy one full core; same ratio as AWS Lambda so sizing intuitions carry over.
    const MB_PER_CORE: u32 = 1769;

    pub fn new(mb: u32) -> Result<MemoryMb, SpecError> {
        if (Self::MIN..=Self::MAX).contains(&mb) {
            Ok(MemoryMb(mb))
        } else {
            Err(SpecError::invalid(FIELD, mb.to_string(), RANGE_RULE))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }

    /// Limit in bytes, the unit cgroups want.
    pub fn bytes(self) -> u64 {
        u64::from(self.0) * 1024 * 1024
    }

    /// Parses "512", "512mb", "512m", "1gb", "2g" (case-insensitive, whitespace allowed).
    pub fn parse(text: &str) -> Result<MemoryMb, SpecError> {
        let shown = text.trim();
        let lower = shown.to_ascii_lowercase();
        let (number, multiplier) = split_unit(&lower);
        let number = number.trim_end();
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SpecError::invalid(FIELD, shown, FORMAT_RULE));
        }
        let mb = number
            .parse::<u32>()
            .ok()
            .and_then(|n| n.checked_mul(multiplier))
            .ok_or_else(|| SpecError::invalid(FIELD, shown, RANGE_RULE))?;
        // Report the text the user wrote, not the converted number, so "64mb" is recognisable.
        MemoryMb::new(mb).map_err(|_| SpecError::invalid(FIELD, shown, RANGE_RULE))
    }

    /// CPU share in millicores: proportional below 1770 MB, then whole cores in 1769 MB steps.
    pub fn cpu_millicores(self) -> u32 {
        let per_core = Self::MB_PER_CORE;
        match self.0 {
            mb if mb <= per_core => mb * 1000 / per_core,
            mb if mb <= 2 * per_core => 2000,
            mb if mb <= 3 * per_core => 3000,
            _ => 4000,
        }
    }

    /// cgroup CPU quota for the given period: [`cpu_quota_us`] of [`MemoryMb::cpu_millicores`].
    pub fn cpu_quota_us(self, period_us: u64) -> i64 {
        cpu_quota_us(self.cpu_millicores(), period_us)
    }
}

/// The CFS period of every sandbox's CPU limit (the kernel's default, 100 ms).
pub const CPU_PERIOD_US: u64 = 100_000;

/// cgroup CPU quota of `millicores` for the given period. The one place a quota is computed:
/// instances (through [`MemoryMb::cpu_quota_us`]) and builds (a fixed 2000 millicores) both
/// end up here, and the sandbox bundle writes what this returns.
///
/// Never below 1000 µs because the kernel rejects smaller quotas; that only matters for
/// periods far shorter than the usual 100 ms.
pub fn cpu_quota_us(millicores: u32, period_us: u64) -> i64 {
    let quota = u128::from(period_us) * u128::from(millicores) / 1000;
    i64::try_from(quota).unwrap_or(i64::MAX).max(1000)
}

/// Splits a lowercase size into number and MB multiplier; "mib"/"gib" are accepted because
/// the sizes are binary anyway.
fn split_unit(lower: &str) -> (&str, u32) {
    for (suffix, multiplier) in [
        ("gib", 1024),
        ("gb", 1024),
        ("g", 1024),
        ("mib", 1),
        ("mb", 1),
        ("m", 1),
    ] {
        if let Some(number) = lower.strip_suffix(suffix) {
            return (number, multiplier);
        }
    }
    (lower, 1)
}

impl Default for MemoryMb {
    fn default() -> Self {
        MemoryMb(Self::DEFAULT)
    }
}

impl fmt::Display for MemoryMb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}mb", self.0)
    }
}

impl FromStr for MemoryMb {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MemoryMb::parse(s)
    }
}

impl TryFrom<u32> for MemoryMb {
    type Error = SpecError;

    fn try_from(mb: u32) -> Result<Self, Self::Error> {
        MemoryMb::new(mb)
    }
}

impl From<MemoryMb> for u32 {
    fn from(memory: MemoryMb) -> u32 {
        memory.0
    }
}

impl Serialize for MemoryMb {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.0)
    }
}

/// Accepts a number of MB or a size string such as "512mb", so hand-written JSON/YAML/TOML can
/// use either form.
impl<'de> Deserialize<'de> for MemoryMb {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MemoryVisitor;

        impl Visitor<'_> for MemoryVisitor {
            type Value = MemoryMb;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a memory size in MB, such as 512 or \"1gb\"")
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<MemoryMb, E> {
                u32::try_from(v)
                    .map_err(|_| SpecError::invalid(FIELD, v.to_string(), RANGE_RULE))
                    .and_then(MemoryMb::new)
                    .map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<MemoryMb, E> {
                u32::try_from(v)
                    .map_err(|_| SpecError::invalid(FIELD, v.to_string(), RANGE_RULE))
                    .and_then(MemoryMb::new)
                    .map_err(E::custom)
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<MemoryMb, E> {
                MemoryMb::parse(v).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(MemoryVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_enforces_range() {
        assert_eq!(MemoryMb::new(128).unwrap().get(), 128);
        assert_eq!(MemoryMb::new(7076).unwrap().get(), 7076);
        let err = MemoryMb::new(64).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid memory '64': must be between 128 and 7076 MB"
        );
        assert!(MemoryMb::new(127).is_err());
        assert!(MemoryMb::new(7077).is_err());
        assert!(MemoryMb::new(0).is_err());
    }

    #[test]
    fn default_is_512() {
        assert_eq!(MemoryMb::default().get(), 512);
    }

    #[test]
    fn parse_units() {
        let cases = [
            ("512", 512),
            ("512mb", 512),
            ("512MB", 512),
            ("512m", 512),
            (" 256 MB ", 256),
            ("1gb", 1024),
            ("1GB", 1024),
            ("2g", 2048),
            ("1GiB", 1024),
            ("300MiB", 300),
        ];
        for (text, mb) in cases {
            assert_eq!(MemoryMb::parse(text).unwrap().get(), mb, "{text:?}");
            assert_eq!(text.parse::<MemoryMb>().unwrap().get(), mb);
        }
    }

    #[test]
    fn parse_rejects_bad_text() {
        for text in ["", "mb", "abc", "1.5gb", "-512", "+512", "512kb", "512 m b"] {
            let err = MemoryMb::parse(text).unwrap_err();
            assert_eq!(err.field(), Some("memory"));
            assert!(err.to_string().contains("512mb"), "{text:?}: {err}");
        }
    }

    #[test]
    fn parse_rejects_out_of_range_naming_text() {
        let err = MemoryMb::parse("64mb").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid memory '64mb': must be between 128 and 7076 MB"
        );
        assert!(MemoryMb::parse("8gb").is_err());
        // Overflow during unit conversion must be a range error, not a panic.
        let err = MemoryMb::parse("4294967295gb").unwrap_err();
        assert!(err.to_string().contains("between 128 and 7076"));
        let err = MemoryMb::parse("99999999999999").unwrap_err();
        assert!(err.to_string().contains("between 128 and 7076"));
    }

    #[test]
    fn cpu_millicores_table() {
        let cases = [
            (128, 72),
            (256, 144),
            (512, 289),
            (1024, 578),
            (1769, 1000),
            (1770, 2000),
            (3538, 2000),
            (3539, 3000),
            (5307, 3000),
            (5308, 4000),
            (7076, 4000),
        ];
        for (mb, millicores) in cases {
            assert_eq!(
                MemoryMb::new(mb).unwrap().cpu_millicores(),
                millicores,
                "{mb}"
            );
        }
    }

    #[test]
    fn cpu_quota_follows_millicores() {
        let m = |mb| MemoryMb::new(mb).unwrap();
        assert_eq!(m(1769).cpu_quota_us(100_000), 100_000);
        assert_eq!(m(512).cpu_quota_us(100_000), 28_900);
        assert_eq!(m(7076).cpu_quota_us(100_000), 400_000);
        assert_eq!(m(128).cpu_quota_us(100_000), 7_200);
        assert_eq!(m(128).cpu_quota_us(1_000), 1_000);
        assert_eq!(m(7076).cpu_quota_us(u64::MAX), i64::MAX);
    }

    #[test]
    fn build_quota_is_two_cores() {
        assert_eq!(cpu_quota_us(2000, CPU_PERIOD_US), 200_000);
        assert_eq!(cpu_quota_us(0, CPU_PERIOD_US), 1_000);
    }

    #[test]
    fn display() {
        assert_eq!(MemoryMb::new(512).unwrap().to_string(), "512mb");
    }

    #[test]
    fn serde_number_and_string() {
        let m = MemoryMb::new(1024).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), "1024");
        assert_eq!(serde_json::from_str::<MemoryMb>("1024").unwrap(), m);
        assert_eq!(serde_json::from_str::<MemoryMb>("\"1gb\"").unwrap(), m);
        for bad in ["64", "-1", "\"64mb\"", "99999999999", "true"] {
            let err = serde_json::from_str::<MemoryMb>(bad).unwrap_err();
            assert!(
                err.to_string().contains("memory") || err.to_string().contains("MB"),
                "{bad}: {err}"
            );
        }
    }
}
