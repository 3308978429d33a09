use std::time::Duration;

use crate::SpecError;

const EXAMPLES: &str = "500ms, 30s, 15m, 1h, 2h30m or 7d";

/// The longest duration any text parses to: about 100 years. Nothing Hoist waits for comes
/// close, and below it every duration's milliseconds fit an `i64` (SQLite's integers, and
/// "now minus a window" arithmetic) with room to spare, so no caller can overflow converting.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses human durations such as "500ms", "30s", "15m", "1h", "2h30m", "7d" or "1h 5m 10s".
/// A number without a unit is refused: `5` could mean seconds, milliseconds or minutes
/// depending on who wrote it, so the writer says which. At most [`MAX_DURATION`].
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
            format!(
                "must be between {} and {}",
                format_duration(min),
                format_duration(max)
            ),
        ));
    }
    Ok(d)
}

/// Whole milliseconds of a duration, saturating (a `Duration` may hold more than a `u64` of
/// them; `as u64` would wrap silently).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A duration as Hoist prints every one of them, bounds and measurements alike, to the
/// precision that matters at its size: `0s`, `850ms`, `2.5s`, `45s`, `1m30s`, `15m`, `2h30m`,
/// `1d`, `7d`. From a minute up, the two largest units are shown and the rest is cut (`15m`
/// for 15 minutes and 400 ms); under a minute a part second shows its hundredths, cut too. All
/// but those fractions are in the form [`parse_duration`] reads, so a printed bound can be
/// typed back.
pub fn format_duration(d: Duration) -> String {
    let ms = millis(d);
    let (days, hours) = (ms / 86_400_000, ms / 3_600_000 % 24);
    let (minutes, seconds) = (ms / 60_000 % 60, ms / 1000 % 60);
    let pair = |big: u64, big_unit: &str, small: u64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    match ms {
        0 => "0s".into(),
        1..1000 => format!("{ms}ms"),
        1000..60_000 if ms.is_multiple_of(1000) => format!("{}s", ms / 1000),
        // Hundredths, cut, trailing zeros dropped: a measurement (a bill's CPU time) is off by
        // under 10 ms, and a bound like 59.999s never reads as a minute.
        1000..60_000 => {
            let hundredths = ms % 1000 / 10;
            let text = format!("{}.{hundredths:02}", ms / 1000);
            format!("{}s", text.trim_end_matches('0').trim_end_matches('.'))
        }
        60_000..3_600_000 => pair(minutes, "m", seconds, "s"),
        3_600_000..86_400_000 => pair(hours, "h", minutes, "m"),
        _ => pair(days, "d", hours, "h"),
    }
}

/// [`format_duration`] for a bound; kept under its old name for the CLI's callers.
pub fn span_text(d: Duration) -> String {
    format_duration(d)
}

/// [`format_duration`] of milliseconds; kept under its old name for the CLI's callers.
pub fn duration_text(ms: u64) -> String {
    format_duration(Duration::from_millis(ms))
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
    let input = text.trim();
    let err = || SpecError::invalid(field, input, format!("expected a duration like {EXAMPLES}"));
    if input.is_empty() {
        return Err(err());
    }
    if input.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SpecError::invalid(
            field,
            input,
            format!(
                "add a unit, e.g. {}s (durations are written like {EXAMPLES})",
                crate::echo(input)
            ),
        ));
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
            (" 45s ", Duration::from_secs(45)),
            ("0s", Duration::ZERO),
            ("0ms", Duration::ZERO),
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
        for too_long in ["36501d", "213503982335d", "18446744073709551615s"] {
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
        assert_eq!(msg, "invalid idle_stop '8d': must be between 100ms and 7d");
        let msg = parse_duration_in("idle_stop", "soon", min, max)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("invalid idle_stop 'soon': expected"),
            "{msg}"
        );
    }

    #[test]
    fn a_number_without_a_unit_is_refused_asking_for_one() {
        for (bare, hint) in [("5", "5s"), (" 30 ", "30s"), ("0", "0s")] {
            let msg = parse_duration(bare).unwrap_err().to_string();
            assert!(
                msg.starts_with(&format!(
                    "invalid duration '{}': add a unit, e.g. {hint}",
                    bare.trim()
                )),
                "{bare:?}: {msg}"
            );
        }
        let msg = parse_duration_in("idle_stop", "900", Duration::ZERO, MAX_DURATION)
            .unwrap_err()
            .to_string();
        assert!(
            msg.starts_with("invalid idle_stop '900': add a unit, e.g. 900s"),
            "{msg}"
        );
        // A number too long for any integer still gets the same advice, its echo cut.
        let huge = "9".repeat(300);
        let msg = parse_duration(&huge).unwrap_err().to_string();
        assert!(msg.contains("add a unit"), "{msg}");
        assert!(msg.len() < 600, "{msg}");
    }

    #[test]
    fn every_duration_prints_one_way() {
        let cases = [
            (0, "0s"),
            (1, "1ms"),
            (850, "850ms"),
            (1000, "1s"),
            (2500, "2.5s"),
            (2599, "2.59s"),
            (2499, "2.49s"),
            (1005, "1s"),
            (45_000, "45s"),
            (59_999, "59.99s"),
            (60_000, "1m"),
            (90_000, "1m30s"),
            (15 * 60_000, "15m"),
            (15 * 60_000 + 400, "15m"),
            (3_600_000, "1h"),
            (9_000_000, "2h30m"),
            (86_400_000, "1d"),
            (7 * 86_400_000, "7d"),
            (36 * 3_600_000, "1d12h"),
        ];
        for (ms, text) in cases {
            let d = Duration::from_millis(ms);
            assert_eq!(format_duration(d), text, "{ms} ms");
            // The old names print the same.
            assert_eq!(duration_text(ms), text);
            assert_eq!(span_text(d), text);
        }
        // What is printed exactly reads back as the same duration.
        for ms in [
            0,
            1,
            850,
            1000,
            45_000,
            60_000,
            90_000,
            9_000_000,
            7 * 86_400_000,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d, "{ms} ms");
        }
    }
}
