//! The `hoist` binary: `server` wires the platform together; every other subcommand is a
//! client of the server's REST API.

// Everything the client prints goes through `out::line` (`outln!`) and `errln!`, which end
// quietly on a closed pipe where `println!` and `eprintln!` panic; the server logs through
// tracing.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod api;
mod client;
mod cron;
mod deploy;
mod env;
mod hooks;
mod observe;
mod out;
mod server;
mod tokens;
mod upload;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hoist",
    version,
    about = "Self-hosted serverless apps: git repo in, URL out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// `--json` of the read commands: the API's answer as JSON (NDJSON for streams) in place of
/// the text for people, for scripts.
#[derive(clap::Args, Clone, Copy)]
pub(crate) struct JsonFlag {
    /// Print the API's answer as JSON (one document; one per line for streams).
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform (gateway, API, builder, sandboxes) in this process.
    Server(server::ServerArgs),
    /// Deploy a git repository (URL or local path); prints the URL once it serves.
    Deploy(deploy::DeployArgs),
    /// List services.
    Ls {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Show a service's deployments and instances.
    Status {
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// A service's deployments, newest first: id, commit, state, trigger, age, reason.
    #[command(visible_alias = "releases")]
    Deployments {
        name: String,
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Print a service's logs: app output, access log, builds (-f to follow, --grep to search).
    Logs(observe::LogsArgs),
    /// A service's events: 5xx answers, crashes, OOM kills, failed starts, with log context.
    Events(observe::EventsArgs),
    /// Per-minute requests, errors, latency, instances, memory and CPU of a service.
    Metrics(observe::MetricsArgs),
    /// Change how a service scales (instances, concurrency, idle freeze/stop) without a redeploy.
    Scale(client::ScaleArgs),
    /// Take a service to zero instances now; the next request starts one again.
    Stop { name: String },
    /// Billable usage per day: active time, frozen time, CPU, GB-seconds, cold starts.
    Usage(client::UsageArgs),
    /// Environment variables, encrypted at rest; changes apply without a rebuild.
    #[command(subcommand)]
    Env(env::EnvCommand),
    /// Cron jobs: requests to a service on a schedule (add, ls, rm, run, runs, pause, resume).
    #[command(subcommand)]
    Cron(cron::CronCommand),
    /// A service's webhook: the URLs to give GitHub, GitLab or Gitea and the secret (--rotate).
    Hooks(hooks::HooksArgs),
    /// Make an earlier deployment live again from its stored image (no rebuild).
    Rollback(env::RollbackArgs),
    /// API tokens for CI and tools: `admin`, `deploy` or `read`, for every service or one.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Delete a service: its instances, route, images and logs (asks for the name unless --yes).
    Delete(client::DeleteArgs),
    /// Print a service's URL, and open it in a browser when there is a display.
    Open { name: String },
    /// List runtimes with their versions and sizes.
    Runtimes {
        #[command(flatten)]
        out: JsonFlag,
    },
    /// Print a shell completion script, e.g. `hoist completions bash > /etc/bash_completion.d/hoist`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

// The gateway allocates per request on its threads and the control plane frees access records
// on its own; mimalloc keeps both cheap (measured in BENCHMARKS.md, reasons in Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::out::errln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Deploy(args) => deploy::deploy(args).await,
            Command::Ls { out } => client::ls(out).await,
            Command::Status { name, out } => client::status(&name, out).await,
            Command::Deployments { name, out } => client::deployments(&name, out).await,
            Command::Logs(args) => observe::logs(args).await,
            Command::Events(args) => observe::events(args).await,
            Command::Metrics(args) => observe::metrics(args).await,
            Command::Delete(args) => client::delete(args).await,
            Command::Scale(args) => client::scale(args).await,
            Command::Stop { name } => client::stop(&name).await,
            Command::Usage(args) => client::usage(args).await,
            Command::Runtimes { out } => client::runtimes(out).await,
            Command::Env(cmd) => env::env(cmd).await,
            Command::Cron(cmd) => cron::cron(cmd).await,
            Command::Rollback(args) => env::rollback(args).await,
            Command::Hooks(args) => hooks::hooks(args).await,
            Command::Open { name } => client::open(&name).await,
            Command::Tokens(cmd) => tokens::tokens(cmd).await,
            Command::Completions { shell } => completions(shell),
        }
    });
    if let Err(e) = result {
        // The reader of stdout went away (`hoist logs shop | head -1`): what it wanted is
        // printed, so this is a success, as for cat or grep.
        if e.downcast_ref::<out::StdoutClosed>().is_some() {
            std::process::exit(0);
        }
        crate::out::errln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hoist", &mut script);
    out::outln!("{}", String::from_utf8_lossy(&script).trim_end())
}

pub(crate) fn default_data_dir() -> PathBuf {
    std::env::var_os("HOIST_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/hoist"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_read_command_takes_json() {
        let cmd = Cli::command();
        for path in [
            &["ls"][..],
            &["status"],
            &["deployments"],
            &["logs"],
            &["events"],
            &["metrics"],
            &["usage"],
            &["env", "ls"],
            &["tokens", "ls"],
            &["tokens", "create"],
            &["runtimes"],
            &["deploy"],
            &["rollback"],
            &["scale"],
            &["cron", "ls"],
            &["cron", "runs"],
            &["cron", "add"],
        ] {
            let mut sub = &cmd;
            for name in path {
                sub = sub
                    .find_subcommand(name)
                    .unwrap_or_else(|| panic!("no subcommand {path:?}"));
            }
            assert!(
                sub.get_arguments().any(|a| a.get_long() == Some("json")),
                "hoist {} has no --json",
                path.join(" ")
            );
        }
    }
}
