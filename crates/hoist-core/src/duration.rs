use std::time::Duration;

use crate::SpecError;

const RULE: &str =
    "expected a duration like 500ms, 30s, 15m, 1h, 2h30m or 7d (a bare number is seconds)";

/// Parses human durations such as "500ms", "30s", "15m", "1h", "2h30m", "7d" or "1h 5m 10s";
/// a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, SpecError> {
    let err = || SpecError::invalid("duration", text.trim(), RULE);
    let input = text.trim();
    if input.is_empty() {
        return Err(err());
    }
    if input.bytes().all(|b| b.is_ascii_digit()) {
        return input.parse().map(Duration::from_secs).map_err(|_| err());
    }

    let mut total = Duration::ZERO;
    let mut rest = input;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = rest[unit_len..].trim_start();
        let part = match unit {
            "ms" => Some(Duration::from_millis(value)),
            "s" => Some(Duration::from_secs(value)),
            "m" => value.checked_mul(60).map(Duration::from_secs),
            "h" => value.checked_mul(3600).map(Duration::from_secs),
            "d" => value.checked_mul(86_400).map(Duration::from_secs),
            _ => None,
        };
        total = part
            .and_then(|part| total.checked_add(part))
            .ok_or_else(err)?;
    }
    Ok(total)
}

/// A duration as people read it, to the precision that matters at its size: `850ms`, `2.5s`,
/// `15m0s`, `2h30m`.
pub fn duration_text(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{}s", ms / 60_000, ms % 60_000 / 1000),
        _ => format!("{}h{}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_combinations() {
        let cases = [
            ("500ms", Duration::from_millis(500)),
            ("30s", Duration::from_secs(30)),
            ("15m", Duration::from_secs(900)),
            ("1h", Duration::from_secs(3600)),
            ("2h30m", Duration::from_secs(9000)),
            ("1h2m3s", Duration::from_secs(3723)),
            ("1m500ms", Duration::from_millis(60_500)),
            ("1h 30m", Duration::from_secs(5400)),
            ("7d", Duration::from_secs(7 * 86_400)),
            (" 45 ", Duration::from_secs(45)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text).unwrap(), expected, "{text:?}");
        }
    }

    #[test]
    fn rejects_bad_text_naming_it() {
        for bad in [
            "",
            "abc",
            "10x",
            "s",
            "1.5h",
            "-5s",
            "1h30",
            "10 s",
            "5w",
            "1H",
            "99999999999999999999",
            "99999999999999999h",
        ] {
            let err = parse_duration(bad).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with(&format!("invalid duration '{}'", bad.trim())),
                "{bad:?}: {msg}"
            );
            assert!(msg.contains("2h30m"), "{msg}");
        }
    }
}
