//! `hoist deploy`: submit a deployment, then follow its build log and steps to the end.

use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use hoist_api_types::{
    DeployRequest, Deployment, DeploymentOutcome, DeploymentStep, RuntimeName, ScalingSettings,
    ServerInfo, ServiceName, StreamEvent,
};
use hoist_core::{AutoDeploy, DeploymentState};
use indicatif::{ProgressBar, ProgressStyle};

use crate::JsonFlag;
use crate::api::{Api, NdjsonLines};
use crate::out::{self, duration, outln};

#[derive(Args)]
pub struct DeployArgs {
    /// A git URL, or the path of a local git repository.
    source: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    branch: Option<String>,
    /// The app's directory inside the repository.
    #[arg(long)]
    root: Option<String>,
    // ---- runtime versions ----
    /// python, node, go, rust, debian or python+node, with an optional version: node@22,
    /// python@3.13, go@1.24 (Leapcell's nodejs20, python3.13 too). Without a version the
    /// project's pin (.nvmrc, package.json engines.node, .python-version, runtime.txt, go.mod)
    /// chooses. A version Hoist does not have is refused here, with the list (`hoist runtimes`).
    #[arg(long, value_parser = available_runtime)]
    runtime: Option<RuntimeName>,
    /// Build command (bash).
    #[arg(long)]
    build: Option<String>,
    /// Start command (bash).
    #[arg(long)]
    start: Option<String>,
    #[arg(long)]
    port: Option<i64>,
    /// Memory in MB (128-7076), e.g. 512 or 1gb.
    #[arg(long)]
    memory: Option<String>,
    /// Environment variable KEY=VALUE (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    #[command(flatten)]
    scaling: ScalingSettings,
    /// Deploy again by itself: `push` (the git host's webhook, see `hoist hooks`), `poll`
    /// (the server asks the remote every --poll-interval) or `off`.
    #[arg(long, value_name = "off|push|poll")]
    auto_deploy: Option<AutoDeploy>,
    /// How often `--auto-deploy poll` asks the remote, e.g. 1m (1s to 24h).
    #[arg(long, value_name = "DURATION")]
    poll_interval: Option<String>,
    /// Deploy a push only when a changed file matches this glob (repeatable: 'api/**').
    #[arg(long, value_name = "GLOB")]
    watch: Vec<String>,
    // ---- static files served by the gateway (issue 15) ----
    /// The folder the build leaves static files in, relative to the app's root directory
    /// (e.g. dist): the gateway serves them itself, without waking an instance. With no
    /// --start this is a static site.
    #[arg(long = "static", value_name = "DIR")]
    static_dir: Option<String>,
    /// Where the static folder's files appear in the site (default /).
    #[arg(long, value_name = "PATH")]
    static_prefix: Option<String>,
    /// A path matching no static file that does not look like a file serves index.html.
    #[arg(long)]
    spa: bool,
    /// Return once the deployment is accepted instead of following it to the end.
    #[arg(long)]
    no_wait: bool,
    /// Print the finished deployment as JSON on stdout (the build log goes to stderr).
    #[command(flatten)]
    out: JsonFlag,
    /// Send the local repository's commit to the server as a git bundle, even if the server
    /// is on this machine (it is sent anyway when the server is on another one).
    #[arg(long)]
    upload: bool,
    /// Deploy the work tree as it is: a snapshot commit of the uncommitted changes on top of
    /// HEAD is uploaded (the repository itself is left as it is).
    #[arg(long)]
    include_uncommitted: bool,
}

/// How often the deployment's steps are read while its log streams (besides at each of the
/// pipeline's own lines): often enough for a step's end to show within half a second, rarely
/// enough to cost the server nothing.
const STEP_POLL: Duration = Duration::from_millis(500);

pub async fn deploy(args: DeployArgs) -> anyhow::Result<()> {
    let api = Api::from_env()?;
    let remote = hoist_core::is_remote_source(&args.source);
    if remote && (args.upload || args.include_uncommitted) {
        bail!(
            "--upload and --include-uncommitted send a local repository; {} is a git URL the server fetches itself",
            args.source
        );
    }
    let (mut source, mut name, mut branch, mut root, mut upload) =
        (args.source.clone(), args.name, args.branch, args.root, None);
    if !remote {
        let path = std::path::absolute(&args.source)
            .with_context(|| format!("resolving {}", args.source))?;
        let server: Option<ServerInfo> = api.get("/v1/server").await.ok();
        // Only an admin token may have the server read a path on its disk: a CI token
        // uploads the commit even to a server on this machine.
        let may_read_paths = server.as_ref().is_none_or(|s| {
            s.caller_role
                .is_none_or(|r| r == hoist_core::TokenRole::Admin)
        });
        if args.upload
            || args.include_uncommitted
            || !may_read_paths
            || crate::upload::server_is_elsewhere(api.base(), server.as_ref())
        {
            // The name as the server would derive it from the path, which it never sees.
            let service = match &name {
                Some(n) => n.parse::<ServiceName>()?,
                None => ServiceName::derive_from_source(&path.display().to_string())?,
            };
            let up = crate::upload::upload(
                &api,
                server.as_ref(),
                crate::upload::UploadAsk {
                    path: &path,
                    service: &service,
                    branch: branch.as_deref(),
                    root: root.as_deref(),
                    include_uncommitted: args.include_uncommitted,
                    to_stderr: args.out.json,
                },
            )
            .await?;
            if !args.include_uncommitted
                && let Some(note) = uncommitted_note(&path, branch.as_deref())
            {
                crate::out::errln!("{note}");
            }
            source = String::new();
            name = Some(service.to_string());
            branch = up.branch;
            root = up.root;
            upload = Some(up.upload.id);
        } else {
            if let Some(note) = uncommitted_note(&path, branch.as_deref()) {
                crate::out::errln!("{note}");
            }
            source = path.display().to_string();
        }
    }
    let body = DeployRequest {
        source,
        name,
        branch,
        root,
        runtime: args.runtime.clone(),
        build: args.build,
        start: args.start,
        port: args.port,
        memory: args.memory,
        env: args.env,
        scaling: args.scaling,
        upload,
        auto_deploy: args.auto_deploy,
        poll_interval: args.poll_interval,
        watch: (!args.watch.is_empty()).then_some(args.watch),
        static_dir: args.static_dir,
        static_prefix: args.static_prefix,
        static_spa: args.spa.then_some(true),
    };
    let created: Deployment = api
        .call(
            api.req(reqwest::Method::POST, "/v1/deployments")
                .json(&body),
        )
        .await?;
    let (id, service) = (created.id.to_string(), created.service.to_string());
    let json = args.out.json;
    // With --json, stdout holds the one JSON document; what people read goes to stderr.
    let say = |text: String| -> anyhow::Result<()> {
        if json {
            crate::out::errln!("{text}");
            Ok(())
        } else {
            outln!("{text}")
        }
    };
    say(format!("deploying {service} as {id}"))?;
    if args.no_wait {
        if json {
            return out::json(&created);
        }
        return say(format!(
            "follow it with `hoist status {service}` or `hoist logs {service} --build -f`"
        ));
    }
    let mut progress = Progress::new(std::io::stderr().is_terminal(), json);
    let outcome = follow(&api, &id, &mut progress).await;
    progress.clear();
    // The steps' last timings (the final step ends with the outcome).
    let record = api
        .get::<Deployment>(&format!("/v1/deployments/{id}"))
        .await;
    if let Ok(record) = &record {
        progress.steps(&record.steps);
    }
    progress.flush_all()?;
    let ev = match outcome? {
        Some(ev) => ev,
        None => bail!(
            "lost the connection to the server before deployment {id} finished; see `hoist status {service}`"
        ),
    };
    if json && let Ok(record) = &record {
        out::json(record)?;
    }
    if ev.state == DeploymentState::Live {
        if !json {
            outln!("{}", ev.url.unwrap_or_default())?;
        }
        return Ok(());
    }
    bail!(
        "deployment {id} {}: {}",
        ev.state,
        ev.reason.as_deref().unwrap_or("no reason recorded")
    )
}

/// Follows the deployment's event stream to its outcome (None if the stream ends first),
/// printing its log lines and reading its steps every [`STEP_POLL`] meanwhile.
async fn follow(
    api: &Api,
    id: &str,
    progress: &mut Progress,
) -> anyhow::Result<Option<DeploymentOutcome>> {
    let resp = api
        .send(api.req(
            reqwest::Method::GET,
            &format!("/v1/deployments/{id}/events"),
        ))
        .await?;
    let mut events = NdjsonLines::new(resp);
    let mut tick = tokio::time::interval(STEP_POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ev = events.next::<StreamEvent>() => {
                match ev? {
                    None => return Ok(None),
                    Some(StreamEvent::Log(l)) => {
                        progress.line(&l.line, l.ts)?;
                        // The pipeline's own lines ("==> ...") come at its steps' edges: read
                        // the steps now rather than at the next tick.
                        if l.line.starts_with("==> ") {
                            steps_now(api, id, progress).await;
                        }
                    }
                    // The outcome; a stream that also tells the steps as they change gets the
                    // steps read at once.
                    Some(StreamEvent::Deployment(ev)) if is_outcome(&ev.state) => {
                        return Ok(Some(ev));
                    }
                    Some(StreamEvent::Deployment(_)) => steps_now(api, id, progress).await,
                }
            }
            _ = tick.tick() => {
                steps_now(api, id, progress).await;
                progress.flush_due()?;
            }
        }
    }
}

/// Reads the deployment's steps and shows what changed. A failed reading only delays the
/// spinner's step: the outcome comes by the stream.
async fn steps_now(api: &Api, id: &str, progress: &mut Progress) {
    if let Ok(record) = api
        .get::<Deployment>(&format!("/v1/deployments/{id}"))
        .await
    {
        progress.steps(&record.steps);
    }
}

/// A deployment state that ends the deploy: live, or one it never leaves.
fn is_outcome(state: &DeploymentState) -> bool {
    *state == DeploymentState::Live || state.is_terminal()
}

/// What a deploy shows while it runs: its log lines, a spinner with the elapsed time of the
/// running step on a terminal, and one line with each step's duration as it ends. Without a
/// terminal (a pipe, a test, CI) there is no spinner: only plain lines.
struct Progress {
    terminal: bool,
    /// Lines go to stderr (stdout is kept for the JSON document).
    to_stderr: bool,
    spinner: Option<ProgressBar>,
    /// How many steps (in the record's order) have been shown starting / ending.
    started: usize,
    ended: usize,
    /// Step ends read from the record whose line waits for the log lines stamped before it:
    /// the record is read at once, the log lines come through the log's queue a little later.
    pending: VecDeque<PendingEnd>,
    /// Where the lines go instead of the terminal, when kept (for the unit tests).
    kept: Option<Vec<String>>,
}

struct PendingEnd {
    finished_at: i64,
    read: Instant,
    text: String,
}

/// How long a step's end waits for earlier log lines: the log's queue hands lines over
/// within milliseconds, so past this nothing stamped before the end is still on its way.
const LINES_LAG: Duration = Duration::from_secs(1);

impl Progress {
    fn new(terminal: bool, to_stderr: bool) -> Progress {
        Progress {
            terminal,
            to_stderr,
            spinner: None,
            started: 0,
            ended: 0,
            pending: VecDeque::new(),
            kept: None,
        }
    }

    /// A log line of the deployment, stamped `ts` by the server: the ends of the steps that
    /// finished before it come first.
    fn line(&mut self, text: &str, ts: i64) -> anyhow::Result<()> {
        while self.pending.front().is_some_and(|p| p.finished_at < ts) {
            if let Some(p) = self.pending.pop_front() {
                self.print(&p.text)?;
            }
        }
        self.print(text)
    }

    /// Prints the step ends that have waited long enough for earlier lines.
    fn flush_due(&mut self) -> anyhow::Result<()> {
        while self
            .pending
            .front()
            .is_some_and(|p| p.read.elapsed() >= LINES_LAG)
        {
            if let Some(p) = self.pending.pop_front() {
                self.print(&p.text)?;
            }
        }
        Ok(())
    }

    /// Prints every step end still waiting (the stream is over).
    fn flush_all(&mut self) -> anyhow::Result<()> {
        while let Some(p) = self.pending.pop_front() {
            self.print(&p.text)?;
        }
        Ok(())
    }

    fn print(&mut self, text: &str) -> anyhow::Result<()> {
        if let Some(kept) = &mut self.kept {
            kept.push(text.to_string());
            return Ok(());
        }
        let to_stderr = self.to_stderr;
        let print = || {
            if to_stderr {
                crate::out::errln!("{text}");
                Ok(())
            } else {
                outln!("{text}")
            }
        };
        match &self.spinner {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// Shows what changed in the deployment's steps since the last call.
    fn steps(&mut self, steps: &[DeploymentStep]) {
        let now = jiff::Timestamp::now().as_millisecond();
        for (i, s) in steps.iter().enumerate() {
            if i >= self.started {
                self.started = i + 1;
                if self.terminal && s.finished_at.is_none() {
                    let bar = ProgressBar::new_spinner()
                        .with_style(
                            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                        )
                        .with_message(s.step.clone())
                        .with_elapsed(Duration::from_millis(
                            u64::try_from(now - s.started_at).unwrap_or(0),
                        ));
                    bar.enable_steady_tick(Duration::from_millis(120));
                    self.spinner = Some(bar);
                }
            }
            if i >= self.ended
                && let Some(finished_at) = s.finished_at
            {
                self.ended = i + 1;
                self.clear();
                let took = duration(u64::try_from(finished_at - s.started_at).unwrap_or(0));
                self.pending.push_back(PendingEnd {
                    finished_at,
                    read: Instant::now(),
                    text: step_end(&s.step, &s.state, &took),
                });
            }
        }
    }

    fn clear(&mut self) {
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
    }
}

/// The line that ends a step: `==> build took 1m51s`, `==> fetch failed after 2.0s`.
fn step_end(step: &str, outcome: &str, took: &str) -> String {
    let noun = match step {
        "fetching" => "fetch",
        "building" => "build",
        "starting" => "start",
        other => other,
    };
    match outcome {
        "done" => format!("==> {noun} took {took}"),
        other => format!("==> {noun} {other} after {took}"),
    }
}

/// For a deploy of a local repository with uncommitted changes: which files they are and which
/// commit is deployed instead (the server fetches commits, not the work tree). None when the
/// work tree is clean or git cannot tell (the server then reports what is wrong).
fn uncommitted_note(path: &Path, branch: Option<&str>) -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(path)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let current = git(&["rev-parse", "--abbrev-ref", "HEAD"])?;
    let current = current.trim();
    // Another branch's last commit is deployed: this work tree's changes are not in question.
    if branch.is_some_and(|b| b != current) {
        return None;
    }
    let status = git(&["status", "--porcelain"])?;
    let changed: Vec<&str> = status.lines().filter(|l| !l.trim().is_empty()).collect();
    if changed.is_empty() {
        return None;
    }
    let head = git(&["log", "-1", "--format=%h %s"])?;
    Some(describe_uncommitted(&changed, current, head.trim()))
}

fn describe_uncommitted(changed: &[&str], branch: &str, head: &str) -> String {
    const SHOWN: usize = 20;
    let mut text = format!(
        "warning: {} uncommitted change(s) are not deployed:\n",
        changed.len()
    );
    for l in changed.iter().take(SHOWN) {
        text.push_str(&format!("  {l}\n"));
    }
    if changed.len() > SHOWN {
        text.push_str(&format!("  ... and {} more\n", changed.len() - SHOWN));
    }
    text.push_str(&format!(
        "deploying the last commit on {branch}: {head} (commit the changes to deploy them, or pass --include-uncommitted)"
    ));
    text
}

/// `--runtime`: the name, and a version the catalogue has (the server checks it again).
fn available_runtime(text: &str) -> Result<RuntimeName, String> {
    let name: RuntimeName = text
        .parse()
        .map_err(|e: hoist_core::SpecError| e.to_string())?;
    hoist_core::runtime_catalog::select(&name).map_err(|e| e.to_string())?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_flags_with_a_version_hoist_lacks_are_refused_with_the_list() {
        assert_eq!(available_runtime("node@22").unwrap().to_string(), "node@22");
        assert_eq!(
            available_runtime("nodejs20").unwrap().to_string(),
            "node@20"
        );
        assert_eq!(available_runtime("python").unwrap().to_string(), "python");
        let err = available_runtime("python@2.7").unwrap_err();
        assert!(
            err.contains("available: python@3.11, python@3.13 (default)"),
            "{err}"
        );
        assert!(available_runtime("cobol@1").is_err());
    }

    #[test]
    fn a_step_ends_with_its_duration_and_outcome() {
        assert_eq!(
            step_end("building", "done", "1m51s"),
            "==> build took 1m51s"
        );
        assert_eq!(
            step_end("fetching", "failed", "2.0s"),
            "==> fetch failed after 2.0s"
        );
    }

    fn step(name: &str, state: &str, started_at: i64, finished_at: Option<i64>) -> DeploymentStep {
        DeploymentStep {
            step: name.into(),
            state: state.into(),
            started_at,
            finished_at,
        }
    }

    #[test]
    fn steps_are_shown_once_each_as_they_end_after_the_lines_before_their_end() {
        let mut p = Progress::new(false, true);
        p.kept = Some(Vec::new());
        let running = [
            step("fetching", "done", 1000, Some(1400)),
            step("building", "running", 1400, None),
        ];
        p.steps(&running);
        p.steps(&running);
        assert_eq!((p.started, p.ended), (2, 1));
        // The fetch's last line, stamped before its end, is still printed before the end.
        p.line("commit abc", 1399).unwrap();
        p.line("building...", 1401).unwrap();
        let done = [
            step("fetching", "done", 1000, Some(1400)),
            step("building", "done", 1400, Some(9000)),
        ];
        p.steps(&done);
        p.line("app layer", 9000).unwrap();
        p.flush_all().unwrap();
        assert_eq!(
            p.kept.as_deref().unwrap_or_default(),
            [
                "commit abc",
                "==> fetch took 400ms",
                "building...",
                "app layer",
                "==> build took 7.6s"
            ]
        );
        p.steps(&done);
        p.flush_all().unwrap();
        assert_eq!(p.kept.map(|k| k.len()), Some(5), "each end once");
    }

    #[test]
    fn uncommitted_changes_are_listed_with_the_commit_deployed() {
        let text = describe_uncommitted(&[" M app.py", "?? notes.txt"], "main", "1a2b3c4 init");
        assert!(
            text.contains(" M app.py") && text.contains("?? notes.txt"),
            "{text}"
        );
        assert!(text.contains("last commit on main: 1a2b3c4 init"), "{text}");
    }
}
