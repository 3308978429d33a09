use super::*;

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn schedule(text: &str) -> CronSchedule {
    text.parse().unwrap()
}

/// The next `n` times after `from`, as RFC 3339 in UTC.
fn nexts(s: &str, tz: &str, from: &str, n: usize) -> Vec<String> {
    let s = schedule(s);
    let tz: CronTimezone = tz.parse().unwrap();
    let mut at = ts(from);
    let mut out = Vec::new();
    for _ in 0..n {
        at = s.next_after(&tz, at).unwrap();
        out.push(at.to_string());
    }
    out
}

#[test]
fn five_fields_and_a_leading_seconds_field() {
    assert_eq!(
        nexts("*/5 * * * *", "UTC", "2026-01-01T00:03:10Z", 2),
        ["2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"]
    );
    assert_eq!(
        nexts("*/10 * * * * *", "UTC", "2026-01-01T00:00:05Z", 2),
        ["2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z"]
    );
    // Strictly after: a time between seconds goes to the next second.
    assert_eq!(
        nexts("* * * * * *", "UTC", "2026-01-01T00:00:05.5Z", 2),
        ["2026-01-01T00:00:06Z", "2026-01-01T00:00:07Z"]
    );
    assert!(!schedule("* * * * *").has_seconds());
    assert!(schedule("* * * * * *").has_seconds());
}

#[test]
fn a_timezone_moves_the_schedule() {
    // 09:00 in Berlin in winter (UTC+1) is 08:00 UTC.
    assert_eq!(
        nexts("0 9 * * *", "Europe/Berlin", "2026-01-10T00:00:00Z", 1),
        ["2026-01-10T08:00:00Z"]
    );
    assert_eq!(
        nexts("0 9 * * *", "America/New_York", "2026-07-10T00:00:00Z", 1),
        ["2026-07-10T13:00:00Z"]
    );
}

#[test]
fn spring_forward_gap_as_croner_defines_it() {
    // Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
    // A fixed-time job in the gap runs at the first valid time after it, the same day.
    assert_eq!(
        nexts("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", 2),
        ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]
    );
    // An interval job skips the times that do not exist.
    assert_eq!(
        nexts("*/30 * * * *", "Europe/Berlin", "2026-03-29T00:15:00Z", 3),
        [
            "2026-03-29T00:30:00Z", // 01:30 CET
            "2026-03-29T01:00:00Z", // 03:00 CEST
            "2026-03-29T01:30:00Z", // 03:30 CEST
        ]
    );
}

#[test]
fn fall_back_overlap_as_croner_defines_it() {
    // Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET; 02:xx happens twice.
    // A fixed-time job runs once, in the first pass.
    assert_eq!(
        nexts("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
        ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    );
    // An interval job runs in both passes.
    assert_eq!(
        nexts("*/30 * * * *", "Europe/Berlin", "2026-10-24T23:45:00Z", 4),
        [
            "2026-10-25T00:00:00Z", // 02:00 CEST
            "2026-10-25T00:30:00Z", // 02:30 CEST
            "2026-10-25T01:00:00Z", // 02:00 CET
            "2026-10-25T01:30:00Z", // 02:30 CET
        ]
    );
}

#[test]
fn bad_schedules_name_the_field_and_what_was_expected() {
    for (text, part) in [
        ("* * * *", "has 4 fields"),
        ("* * * * * * *", "has 7 fields"),
        ("61 * * * *", "five fields"),
        ("every day", "has 2 fields"),
        ("0 0 30 2 *", "never matches"),
        ("", "has 0 fields"),
    ] {
        let err = text.parse::<CronSchedule>().unwrap_err();
        assert_eq!(err.field(), Some("schedule"), "{text}");
        let msg = err.to_string();
        assert!(msg.starts_with("invalid schedule"), "{msg}");
        assert!(msg.contains(part), "{text}: {msg}");
    }
}

#[test]
fn timezones_paths_methods_and_ids_are_checked() {
    let err = "Mars/Olympus".parse::<CronTimezone>().unwrap_err();
    assert_eq!(err.field(), Some("timezone"));
    assert!(err.to_string().contains("IANA"), "{err}");
    for bad in ["", "/etc/localtime", "../../etc/passwd"] {
        assert!(bad.parse::<CronTimezone>().is_err(), "{bad}");
    }
    assert_eq!(
        "Europe/Berlin".parse::<CronTimezone>().unwrap().as_str(),
        "Europe/Berlin"
    );

    for bad in ["tasks", "//evil.example/", "/a b", "/a#frag", "/\u{e9}"] {
        let err = bad.parse::<CronPath>().unwrap_err();
        assert_eq!(err.field(), Some("path"), "{bad}");
        assert!(
            err.to_string().contains("expected an absolute path"),
            "{err}"
        );
    }
    assert!("/tasks/cleanup?full=1".parse::<CronPath>().is_ok());

    let err = "FETCH".parse::<CronMethod>().unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid method 'FETCH': must be one of GET, POST, PUT, PATCH, DELETE"
    );
    assert_eq!(
        "forbid".parse::<CronConcurrency>().unwrap(),
        CronConcurrency::Forbid
    );
    assert!("sometimes".parse::<CronConcurrency>().is_err());
    assert_eq!(CronSource::HoistToml.as_str(), "hoist.toml");

    assert!("Cleanup".parse::<CronJobId>().is_err());
    let path: CronPath = "/tasks/Clean_up?x=1".parse().unwrap();
    assert_eq!(
        CronJobId::from_path(&path, CronMethod::Get).as_str(),
        "tasks-clean-up"
    );
    assert_eq!(
        CronJobId::from_path(&path, CronMethod::Post).as_str(),
        "post-tasks-clean-up"
    );
    let root: CronPath = "/".parse().unwrap();
    assert_eq!(
        CronJobId::from_path(&root, CronMethod::Get).as_str(),
        "root"
    );

    assert!(parse_cron_timeout("15m").is_ok());
    assert_eq!(
        parse_cron_timeout("16m").unwrap_err().field(),
        Some("timeout")
    );
    assert_eq!(check_cron_retries(11).unwrap_err().field(), Some("retries"));
    assert_eq!(check_cron_retries(3).unwrap(), 3);
}
