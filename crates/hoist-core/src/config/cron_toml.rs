//! `[[cron]]` tables of hoist.toml: each a job, checked key by key before anything is built,
//! so a bad schedule fails the deploy naming the table and the key.

use std::collections::BTreeSet;

use toml::Value;

use crate::{
    CRON_TIMEOUT_DEFAULT, CronConcurrency, CronFileJob, CronJobId, CronJobSpec, CronMethod,
    CronPath, CronSchedule, CronTimezone, SpecError, check_cron_retries, echo, parse_cron_timeout,
};

const FILE: &str = "hoist.toml";
const KEYS: [&str; 8] = [
    "id",
    "schedule",
    "path",
    "method",
    "timezone",
    "timeout",
    "concurrency",
    "retries",
];

/// The jobs of `cron = [...]` / `[[cron]]`.
pub(super) fn cron_jobs(value: &Value) -> Result<Vec<CronFileJob>, SpecError> {
    let Value::Array(tables) = value else {
        return Err(SpecError::file(
            FILE,
            format!(
                "key `cron`: must be an array of tables ([[cron]]), got {}",
                value.type_str()
            ),
        ));
    };
    let mut ids = BTreeSet::new();
    let mut jobs = Vec::with_capacity(tables.len());
    for (i, table) in tables.iter().enumerate() {
        let at = format!("[[cron]] #{}", i + 1);
        let job = one(table, &at)?;
        if !ids.insert(job.id.clone()) {
            return Err(SpecError::file(
                FILE,
                format!(
                    "{at}: job id `{}` is used twice; give each job its own `id`",
                    job.id
                ),
            ));
        }
        jobs.push(CronFileJob::from(&job));
    }
    Ok(jobs)
}

fn one(value: &Value, at: &str) -> Result<CronJobSpec, SpecError> {
    let err = |message: String| SpecError::file(FILE, format!("{at}: {message}"));
    let Value::Table(table) = value else {
        return Err(err(format!("must be a table, got {}", value.type_str())));
    };
    if let Some(key) = table.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(err(format!(
            "unknown key `{}`; expected one of {}",
            echo(key),
            KEYS.join(", ")
        )));
    }
    let text = |key: &str| -> Result<Option<String>, SpecError> {
        match table.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(err(format!(
                "key `{key}`: must be a string, got {}",
                other.type_str()
            ))),
        }
    };
    let keyed = |key: &'static str| move |e: SpecError| err(format!("key `{key}`: {e}"));
    let schedule: CronSchedule = text("schedule")?
        .ok_or_else(|| err("key `schedule` is missing, e.g. schedule = \"*/5 * * * *\"".into()))?
        .parse()
        .map_err(keyed("schedule"))?;
    let path: CronPath = text("path")?
        .ok_or_else(|| err("key `path` is missing, e.g. path = \"/tasks/cleanup\"".into()))?
        .parse()
        .map_err(keyed("path"))?;
    let method: CronMethod = match text("method")? {
        Some(m) => m.to_ascii_uppercase().parse().map_err(keyed("method"))?,
        None => CronMethod::default(),
    };
    let timezone: CronTimezone = match text("timezone")? {
        Some(tz) => tz.parse().map_err(keyed("timezone"))?,
        None => CronTimezone::utc(),
    };
    let timeout = match text("timeout")? {
        Some(t) => parse_cron_timeout(&t).map_err(keyed("timeout"))?,
        None => CRON_TIMEOUT_DEFAULT,
    };
    let concurrency: CronConcurrency = match text("concurrency")? {
        Some(c) => c.parse().map_err(keyed("concurrency"))?,
        None => CronConcurrency::default(),
    };
    let retries = match table.get("retries") {
        None => 0,
        Some(Value::Integer(n)) => check_cron_retries(*n).map_err(keyed("retries"))?,
        Some(other) => {
            return Err(err(format!(
                "key `retries`: must be a number, got {}",
                other.type_str()
            )));
        }
    };
    let id = match text("id")? {
        Some(id) => id.parse().map_err(keyed("id"))?,
        None => CronJobId::from_path(&path, method),
    };
    Ok(CronJobSpec {
        id,
        schedule,
        path,
        method,
        timezone,
        timeout,
        concurrency,
        retries,
    })
}

#[cfg(test)]
mod tests {
    use crate::SpecLayer;

    #[test]
    fn cron_tables_become_jobs() {
        let layer = SpecLayer::from_hoist_toml(
            r#"
start = "python app.py"
[[cron]]
schedule = "*/5 * * * *"
path = "/tasks/cleanup"

[[cron]]
id = "report"
schedule = "0 9 * * 1-5"
path = "/report"
method = "post"
timezone = "Europe/Berlin"
timeout = "15m"
concurrency = "replace"
retries = 3
"#,
        )
        .unwrap();
        let jobs = layer.cron.unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[0].id.as_str(), "tasks-cleanup");
        assert_eq!(jobs[0].timezone.as_str(), "UTC");
        assert_eq!(jobs[1].id.as_str(), "report");
        assert_eq!(jobs[1].method.as_str(), "POST");
        assert_eq!(jobs[1].timeout_ms, 15 * 60 * 1000);
        assert_eq!(jobs[1].retries, 3);
    }

    #[test]
    fn a_bad_job_names_the_table_and_the_key() {
        for (body, expected) in [
            (
                "schedule = \"* * *\"\npath = \"/a\"",
                "hoist.toml: [[cron]] #1: key `schedule`: invalid schedule '* * *': has 3 fields; expected five fields",
            ),
            (
                "schedule = \"* * * * *\"\npath = \"a\"",
                "hoist.toml: [[cron]] #1: key `path`: invalid path 'a': must start with '/'",
            ),
            (
                "schedule = \"* * * * *\"\npath = \"/a\"\ntimezone = \"Moon/Base\"",
                "hoist.toml: [[cron]] #1: key `timezone`: invalid timezone 'Moon/Base'",
            ),
            (
                "schedule = \"* * * * *\"\npath = \"/a\"\nmethod = \"FETCH\"",
                "hoist.toml: [[cron]] #1: key `method`: invalid method 'FETCH': must be one of GET",
            ),
            (
                "schedule = \"* * * * *\"\npath = \"/a\"\nevery = 1",
                "hoist.toml: [[cron]] #1: unknown key `every`",
            ),
            (
                "path = \"/a\"",
                "hoist.toml: [[cron]] #1: key `schedule` is missing",
            ),
        ] {
            let text = format!("[[cron]]\n{body}\n");
            let err = SpecLayer::from_hoist_toml(&text).unwrap_err().to_string();
            assert!(err.starts_with(expected), "{err}\n  expected {expected}");
        }
        let twice = "[[cron]]\nschedule = \"* * * * *\"\npath = \"/a\"\n[[cron]]\nschedule = \"0 * * * *\"\npath = \"/a\"\n";
        let err = SpecLayer::from_hoist_toml(twice).unwrap_err().to_string();
        assert!(err.contains("job id `a` is used twice"), "{err}");
    }
}
