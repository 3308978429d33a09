//! The `hoist` binary: `server` wires the platform together; every other subcommand is a
//! client of the server's REST API.

mod client;
mod env;
mod observe;
mod server;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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

#[derive(Subcommand)]
enum Command {
    /// Run the whole platform (gateway, API, builder, sandboxes) in this process.
    Server(server::ServerArgs),
    /// Deploy a git repository (URL or local path); prints the URL once it serves.
    Deploy(client::DeployArgs),
    /// List services.
    Ls,
    /// Show a service's deployments and instances.
    Status { name: String },
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
    /// Make an earlier deployment live again from its stored image (no rebuild).
    Rollback(env::RollbackArgs),
    /// Delete a service: its instances, route, images and logs.
    Delete { name: String },
    /// List runtimes with their versions and sizes.
    Runtimes,
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
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(1);
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Deploy(args) => client::deploy(args).await,
            Command::Ls => client::ls().await,
            Command::Status { name } => client::status(&name).await,
            Command::Logs(args) => observe::logs(args).await,
            Command::Events(args) => observe::events(args).await,
            Command::Metrics(args) => observe::metrics(args).await,
            Command::Delete { name } => client::delete(&name).await,
            Command::Scale(args) => client::scale(args).await,
            Command::Stop { name } => client::stop(&name).await,
            Command::Usage(args) => client::usage(args).await,
            Command::Runtimes => client::runtimes().await,
            Command::Env(cmd) => env::env(cmd).await,
            Command::Rollback(args) => env::rollback(args).await,
        }
    });
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

pub(crate) fn default_data_dir() -> PathBuf {
    std::env::var_os("HOIST_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/hoist"))
}
