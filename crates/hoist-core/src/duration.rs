use std::time::Duration;

use crate::SpecError;

const RULE: &str =
    "expected a duration like 500ms, 30s, 15m, 1h, 2h30m or 7d (a bare number is seconds)";

/// The longest duration any text parses to: about 100 years. Nothing Hoist waits for comes
/// close, and below it every duration's milliseconds fit an `i64` (SQLite's integers, and
/// "now minus a window" arithmetic) with room to spare, so no caller can overflow converting.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses human durations such as "500ms", "30s", "15m", "1h", "2h30m", "7d" or "1h 5m 10s";
/// a bare number means seconds. At most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, SpecError> {
    parse_named("duration", text)
}

/// [`parse_duration`] for one setting: errors name `field`, and the result is checked to lie
/// within `min..=max` (both inclusive).
pub fn parse_duration_in(
    field: &'static str,
    text: &str,
    min: Duration,
    max: Duration,
) -> Result<Duration, SpecError> {
    let d = parse_named(field, text)?;
    if d < min || d > max {
        return Err(SpecError::invalid(
            field,
            text.trim(),
            format!("must be between {} and {}", span_text(min), span_text(max)),
        ));
    }
    Ok(d)
}

/// Whole milliseconds of a duration, saturating (a `Duration` may hold more than a `u64` of
/// them; `as u64` would wrap silently).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A bound as people say it: `100ms`, `1s`, `15 minutes`, `24 hours`, `7 days`.
pub fn span_text(d: Duration) -> String {
    let ms = millis(d);
    let plural = |n: u64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    match ms {
        0 => "0s".into(),
        ms if ms % 86_400_000 == 0 => plural(ms / 86_400_000, "day"),
        ms if ms % 3_600_000 == 0 => plural(ms / 3_600_000, "hour"),
        ms if ms % 60_000 == 0 => plural(ms / 60_000, "minute"),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

fn parse_named(field: &'static str, text: &str) -> Result<Duration, SpecError> {
    let total = parse_any(field, text)?;
    if total > MAX_DURATION {
        return Err(SpecError::invalid(
            field,
            text.trim(),
            "longer than anything can wait (at most 100 years)",
        ));
    }
    Ok(total)
}

fn parse_any(field: &'static str, text: &str) -> Result<Duration, SpecError> {
    let err = || SpecError::invalid(field, text.trim(), RULE);
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

    #[test]
    fn nothing_past_100_years_parses() {
        assert_eq!(parse_duration("36500d").unwrap(), MAX_DURATION);
        for too_long in ["36501d", "213503982335d", "18446744073709551615"] {
            let msg = parse_duration(too_long).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!("invalid duration '{too_long}'"))
                    && msg.contains("100 years"),
                "{msg}"
            );
        }
        // Every duration that parses has its milliseconds in an i64.
        assert!(i64::try_from(millis(MAX_DURATION)).is_ok());
        assert_eq!(millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn a_field_is_named_and_checked_against_its_bounds() {
        let min = Duration::from_millis(100);
        let max = Duration::from_secs(7 * 86_400);
        assert_eq!(
            parse_duration_in("idle_stop", "100ms", min, max).unwrap(),
            min
        );
        assert_eq!(parse_duration_in("idle_stop", "7d", min, max).unwrap(), max);
        for bad in ["99ms", "7d1ms", "213503982335d"] {
            let msg = parse_duration_in("idle_stop", bad, min, max)
                .unwrap_err()
                .to_string();
            assert!(
                msg.starts_with(&format!("invalid idle_stop '{bad}'")),
                "{msg}"
            );
        }
        let msg = parse_duration_in("idle_stop", "8d", min, max)
            .unwrap_err()
            .to_string();
        assert_eq!(
            msg,
            "invalid idle_stop '8d': must be between 100ms and 7 days"
        );
        let msg = parse_duration_in("idle_stop", "soon", min, max)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("invalid idle_stop 'soon': expected"),
            "{msg}"
        );
    }

    #[test]
    fn bounds_read_as_people_say_them() {
        assert_eq!(span_text(Duration::from_millis(100)), "100ms");
        assert_eq!(span_text(Duration::from_secs(1)), "1s");
        assert_eq!(span_text(Duration::from_secs(90)), "90s");
        assert_eq!(span_text(Duration::from_secs(900)), "15 minutes");
        assert_eq!(span_text(Duration::from_secs(3600)), "1 hour");
        assert_eq!(span_text(Duration::from_secs(86_400 * 7)), "7 days");
    }
}
