use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hoist_control::{Platform, PlatformConfig};
use hoist_gateway::{Gateway, GatewayConfig};
use hoist_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Args)]
pub struct ServerArgs {
    /// Where state, images and logs live.
    #[arg(long, env = "HOIST_DATA_DIR", default_value = "/var/lib/hoist")]
    data_dir: PathBuf,
    /// The gateway: apps are served here as NAME.DOMAIN.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The REST API.
    #[arg(long, default_value = "127.0.0.1:7070")]
    api_listen: SocketAddr,
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// Runtime root filesystems; may be shared between data dirs (default: DATA_DIR/runtimes).
    #[arg(long, env = "HOIST_RUNTIME_CACHE")]
    runtime_cache: Option<PathBuf>,
    /// How long an instance may take to answer HTTP after its start command runs.
    #[arg(long, default_value = "60s", value_parser = parse_start_timeout)]
    start_timeout: std::time::Duration,
    /// How long a starting instance keeps its startup CPU boost after it first answered
    /// (services with `startup_boost` on, the default): its first requests often still load
    /// code. Then its quota goes back to its memory's share.
    #[arg(long, default_value = "10s", value_parser = parse_boost_settle)]
    startup_boost_settle: std::time::Duration,
    /// How long a request may take, from when it reaches the instance to the end of its
    /// response: `504` if the answer has not begun by then, and a response still streaming is
    /// cut. Upgraded connections (WebSocket) are not limited.
    #[arg(long, default_value = "15m", value_parser = parse_request_timeout)]
    request_timeout: std::time::Duration,
    /// How long a build command may run.
    #[arg(long, default_value = "10m", value_parser = parse_build_timeout)]
    build_timeout: std::time::Duration,
    /// Builds that may run at once.
    #[arg(long, default_value_t = 2)]
    max_builds: usize,
    /// Sandboxes kept set up ahead of time, one per recently used deployment, so that a
    /// start from zero only has to run the app (0 turns the warm pool off).
    #[arg(long, default_value_t = 32)]
    warm_pool: usize,
    /// Images kept per service for rollbacks: those of its most recent deployments that went
    /// live. Older ones are removed after each successful deploy.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    keep_images: u16,
    /// How long log lines and events are kept.
    #[arg(long, default_value = "7d", value_parser = parse_log_retention)]
    log_retention: std::time::Duration,
    /// Most log bytes kept per service (e.g. 100MB, 1GB); the oldest go first.
    #[arg(long, default_value = "100MB", value_parser = parse_size)]
    log_max_size: u64,
    /// The largest upload `hoist deploy --upload` may send (a git bundle of the commit
    /// deployed), e.g. 200MB or 1GB; a larger one is refused with 413 before it is stored.
    #[arg(long, default_value = "200MB", value_parser = parse_max_upload)]
    max_upload: u64,
    /// Turns off the access log and per-request metrics (to measure what they cost).
    #[arg(long)]
    no_request_logging: bool,
    /// How often per-service metrics are sampled (one minute; shorter for tests).
    #[arg(long, default_value = "1m", value_parser = parse_metrics_resolution, hide = true)]
    metrics_resolution: std::time::Duration,
    /// Gateway threads, each with its own event loop. The default is half the cores: the
    /// gateway shares the machine with the apps behind it, and on 2 cores one worker beat
    /// two by 1.6x in throughput and CPU per request (BENCHMARKS.md).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024),
          default_value_t = default_gateway_workers())]
    gateway_workers: u16,
    /// Scheduling priority of the gateway threads, as `nice` takes it (-20..19; nginx's
    /// `worker_priority`). The gateway carries every app's requests: a thread that waits
    /// behind other work for a CPU delays them all, so it runs slightly ahead of the apps by
    /// default. On 2 cores, with Hoist and nginx both at -5, the gateway went from parity with
    /// nginx's throughput to 1.16x (BENCHMARKS.md). 0 leaves it at the server's own priority.
    #[arg(long, default_value_t = -5, allow_negative_numbers = true,
          value_parser = clap::value_parser!(i8).range(-20..=19))]
    gateway_nice: i8,
    /// TCP ports of the host that instances and builds may connect to (through
    /// `host.hoist.internal` or any host address), e.g. `5432,6379` for a database and a cache
    /// on the host. None by default: every other host port is refused, and the server's own
    /// gateway and API ports can never be opened.
    #[arg(long, env = "HOIST_HOST_PORTS", value_delimiter = ',', value_name = "PORTS",
          value_parser = parse_host_port)]
    host_ports: Vec<u16>,
    /// Client connections the gateway keeps open at once. At the cap the connection idle
    /// longest (between requests) is closed to make room; when none is idle, new connections
    /// wait in the listen backlog until one closes or goes idle. Default: half of the open
    /// files the server may have, less the API's cap and 256 for its own files (a client
    /// connection being proxied holds one to its instance as well).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: Option<u32>,
    /// The same cap for the API (default 256, or an eighth of the open-file limit if less).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    api_max_connections: Option<u32>,
    /// Does not serve the web dashboard on the API listener (only the API answers there).
    #[arg(long)]
    no_dashboard: bool,
    /// The API's address as git hosts reach it (a proxy in front, say
    /// https://hoist.example.com): the base of the webhook URLs `hoist hooks` prints.
    /// Default: http:// and the --api-listen address (the port bound, for port 0).
    #[arg(long, value_name = "URL")]
    public_api_url: Option<String>,
    /// How long a replaced deployment's static files keep answering after a deploy or
    /// rollback switches away from it, so a page loaded before the switch still gets the
    /// hashed chunks it asks for (0s to 7d).
    #[arg(long, default_value = "10m", value_parser = parse_static_grace)]
    static_grace: std::time::Duration,
}

/// The webhook URLs' base: `--public-api-url` (an http or https URL, path kept, no trailing
/// slash), else the API listener's own address.
fn public_api_url(given: Option<&str>, api: SocketAddr) -> anyhow::Result<String> {
    let Some(url) = given else {
        return Ok(format!("http://{api}"));
    };
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {
            Ok(url.to_string())
        }
        _ => anyhow::bail!(
            "invalid --public-api-url '{url}': must be an http:// or https:// URL, e.g. https://hoist.example.com"
        ),
    }
}

/// One port of `--host-ports`.
fn parse_host_port(s: &str) -> Result<u16, String> {
    match s.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "'{s}' is not a TCP port (1-65535); give a comma-separated list like 5432,6379"
        )),
    }
}

fn default_gateway_workers() -> u16 {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (cores / 2).clamp(1, 1024) as u16
}

/// "100MB", "1GB", "512KB" or a number of bytes (powers of 1024); 1 MB to 1 TB, for
/// `--log-max-size`: below 1 MB a service's log holds less than its last build, and a cap past
/// 1 TB is no cap (and stays far from the i64 range SQLite counts bytes in).
fn parse_size(s: &str) -> Result<u64, String> {
    size_flag("--log-max-size", s)
}

/// `--max-upload`: the largest git bundle `hoist deploy --upload` may send, in the same
/// forms and bounds as `--log-max-size`.
fn parse_max_upload(s: &str) -> Result<u64, String> {
    size_flag("--max-upload", s)
}

fn size_flag(flag: &str, s: &str) -> Result<u64, String> {
    const MIN: u64 = 1 << 20;
    const MAX: u64 = 1 << 40;
    let shown = hoist_core::echo(s.trim());
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let out_of_range = || format!("invalid {flag} '{shown}': must be between 1MB and 1TB");
    let n: u64 = match digits.parse() {
        Ok(n) => n,
        Err(_) if !digits.is_empty() => return Err(out_of_range()),
        Err(_) => {
            return Err(format!("invalid {flag} '{shown}': not a size like 100MB"));
        }
    };
    let factor: u64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        "T" | "TB" => 1 << 40,
        _ => {
            return Err(format!(
                "invalid {flag} '{shown}': unknown size unit (use KB, MB, GB or TB)"
            ));
        }
    };
    n.checked_mul(factor)
        .filter(|b| (MIN..=MAX).contains(b))
        .ok_or_else(out_of_range)
}

/// The server's durations, each with its bounds: the lower one lets the thing happen at all,
/// the upper one catches a typo (or an overflow) that would make it wait forever.
fn parse_start_timeout(s: &str) -> Result<Duration, String> {
    // An app that has not answered HTTP within an hour is not starting.
    bounded("--start-timeout", s, Duration::from_secs(1), 3600)
}

fn parse_boost_settle(s: &str) -> Result<Duration, String> {
    // An hour of boost is no longer a start's: that is what a larger memory size buys.
    bounded(
        "--startup-boost-settle",
        s,
        Duration::from_millis(100),
        3600,
    )
}

fn parse_request_timeout(s: &str) -> Result<Duration, String> {
    // A day: longer requests are jobs, not requests (WebSocket connections are not limited).
    bounded("--request-timeout", s, Duration::from_secs(1), 24 * 3600)
}

fn parse_build_timeout(s: &str) -> Result<Duration, String> {
    // The longest real builds (a large Rust workspace from scratch) take an hour or two.
    bounded("--build-timeout", s, Duration::from_secs(1), 24 * 3600)
}

fn parse_log_retention(s: &str) -> Result<Duration, String> {
    // Ten years: logs are not an archive.
    bounded("--log-retention", s, Duration::from_secs(1), 3650 * 86_400)
}

fn parse_static_grace(s: &str) -> Result<Duration, String> {
    bounded("--static-grace", s, Duration::ZERO, 7 * 86_400)
}

fn parse_metrics_resolution(s: &str) -> Result<Duration, String> {
    bounded("--metrics-resolution", s, Duration::from_millis(100), 3600)
}

fn bounded(field: &'static str, s: &str, min: Duration, max_secs: u64) -> Result<Duration, String> {
    let max = Duration::from_secs(max_secs);
    hoist_core::parse_duration_in(field, s, min, max).map_err(|e| {
        if hoist_core::parse_duration(s).is_ok_and(|d| d.is_zero()) {
            format!(
                "invalid {field} '{}': must be more than zero (between {} and {})",
                s.trim(),
                hoist_core::span_text(min),
                hoist_core::span_text(max)
            )
        } else {
            e.to_string()
        }
    })
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Every client connection is a descriptor: the caps below are worked out from the limit.
    let open_files = hoist_gateway::listen::raise_open_files_limit();
    let (gateway_cap, api_cap) = hoist_gateway::listen::default_caps(open_files);
    let max_connections = args.max_connections.map_or(gateway_cap, |n| n as usize);
    let api_max_connections = args.api_max_connections.map_or(api_cap, |n| n as usize);
    if (2 * max_connections + api_max_connections) as u64 > open_files {
        tracing::warn!(
            open_files,
            max_connections,
            api_max_connections,
            "the connection caps exceed the open-file limit: a flood of clients can exhaust it"
        );
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    // Images hold whatever builds (running as root in their sandbox) wrote, setuid files
    // included: no other host user gets to walk into them.
    std::fs::set_permissions(
        &args.data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .with_context(|| format!("restricting {}", args.data_dir.display()))?;
    hoist_sandbox::prepare_host().context("preparing the host for sandboxes")?;
    // Before any sandbox exists, so none is ever unfiltered.
    let host_input = hoist_sandbox::HostInput::install(
        &args.data_dir,
        &args.host_ports,
        &[args.listen.port(), args.api_listen.port()],
    )
    .context("opening --host-ports to instances and builds")?;
    // Instances are created ahead of time by `crun create`, which exits; their init processes
    // must become ours so their exit status can be read.
    hoist_sandbox::become_subreaper()?;

    let store = Arc::new(
        Store::open(&args.data_dir.join("hoist.db")).context("opening the state database")?,
    );
    let token_file = args.data_dir.join("admin-token");
    // The file holds the token's only plain copy; a copy of a token revoked since (`hoist
    // tokens revoke`) is as good as none.
    // Only a missing file means the copy is gone: a file that cannot be read (permissions,
    // I/O) is an error to fix, not a reason to replace the token its clients use.
    let file_live = match std::fs::read_to_string(&token_file) {
        Ok(t) => store.verify_token(t.trim())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "reading the admin token in {}",
                token_file.display()
            )));
        }
    };
    let new_token = match store.ensure_admin_token()? {
        Some(t) => Some(t),
        // The database has a token but its only plain copy is gone: issue a new one.
        None if !file_live => Some(store.replace_admin_token()?),
        None => None,
    };
    if let Some(token) = new_token {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&token_file)
            .with_context(|| format!("writing {}", token_file.display()))?;
        writeln!(f, "{token}")?;
        tracing::info!(file = %token_file.display(), "admin token written");
    }

    let gateway_listener = Gateway::bind(args.listen)
        .with_context(|| format!("binding the gateway to {}", args.listen))?;
    let api_listener = TcpListener::bind(args.api_listen)
        .await
        .with_context(|| format!("binding the API to {}", args.api_listen))?;
    let api_addr = api_listener.local_addr().unwrap_or(args.api_listen);

    let gateway = Gateway::new(GatewayConfig {
        // A request may wait out a whole cold start.
        hold_timeout: args.start_timeout + std::time::Duration::from_secs(5),
        request_timeout: args.request_timeout,
        workers: usize::from(args.gateway_workers),
        nice: i32::from(args.gateway_nice),
        record_requests: !args.no_request_logging,
        max_connections,
        ..GatewayConfig::new(&args.domain)
    });
    let platform = Platform::start(
        PlatformConfig {
            runtime_cache: args
                .runtime_cache
                .clone()
                .unwrap_or_else(|| args.data_dir.join("runtimes")),
            data_dir: args.data_dir.clone(),
            domain: args.domain.clone(),
            gateway_port: args.listen.port(),
            gateway_addr: args.listen,
            start_timeout: args.start_timeout,
            build_timeout: args.build_timeout,
            max_concurrent_builds: args.max_builds,
            warm_pool: args.warm_pool,
            keep_images: usize::from(args.keep_images),
            retention: hoist_control::Retention {
                max_age: args.log_retention,
                max_bytes_per_service: args.log_max_size,
                metrics_resolution: args.metrics_resolution,
            },
            startup_boost: hoist_control::BoostConfig::for_this_machine(args.startup_boost_settle),
            static_grace: args.static_grace,
        },
        store,
        gateway.clone(),
    )
    .await
    .context("starting the platform")?;

    let shutdown = CancellationToken::new();
    let gw_task = tokio::spawn(gateway.serve(gateway_listener, shutdown.clone()));
    let api = hoist_api::router(
        platform.clone(),
        hoist_api::ApiOptions {
            admin_token_file: token_file.clone(),
            dashboard: !args.no_dashboard,
            domain: args.domain.clone(),
            max_upload: args.max_upload,
            public_url: public_api_url(args.public_api_url.as_deref(), api_addr)?,
        },
    );
    let api_limit =
        hoist_gateway::listen::ConnLimit::new(api_max_connections, "API", shutdown.clone());
    let api_task = tokio::spawn(hoist_api::serve(api_listener, api, api_limit));
    tracing::info!(gateway = %args.listen, api = %args.api_listen, domain = %args.domain,
        open_files, max_connections, api_max_connections, "hoist is up");
    if !args.no_dashboard {
        if hoist_api::dashboard_built() {
            tracing::info!(url = %format!("http://{}/", args.api_listen), "dashboard");
        } else {
            tracing::warn!(
                "this binary was built without ui/dist: the dashboard says how to build it"
            );
        }
    }

    wait_for_signal().await;
    tracing::info!("shutting down: draining instances");
    shutdown.cancel();
    // Bounded whatever came before (instances drain for up to 30 s, then get 10 s to stop):
    // what is still running then is cleaned up by the next start, as after a crash.
    if tokio::time::timeout(SHUTDOWN_LIMIT, platform.shutdown())
        .await
        .is_err()
    {
        // Their host filter stays too: the next start refills it.
        tracing::warn!("instances still stopping after {SHUTDOWN_LIMIT:?}; exiting without them");
    } else {
        host_input.remove();
    }
    let _ = gw_task.await;
    // The gateway's last access records and the instances' last lines, stored before exit.
    if tokio::time::timeout(std::time::Duration::from_secs(10), platform.flush_logs())
        .await
        .is_err()
    {
        tracing::warn!("log lines still unwritten after 10 s; exiting without them");
    }
    // Followers of live logs keep their streams open; do not wait on them forever.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), api_task).await;
    Ok(())
}

/// The longest a clean stop waits for the platform.
const SHUTDOWN_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_api_url_defaults_to_the_listener_and_must_be_http() {
        let addr: SocketAddr = "127.0.0.1:7070".parse().unwrap();
        assert_eq!(public_api_url(None, addr).unwrap(), "http://127.0.0.1:7070");
        assert_eq!(
            public_api_url(Some("https://hoist.example.com/"), addr).unwrap(),
            "https://hoist.example.com"
        );
        for bad in ["hoist.example.com", "ftp://x", "https://", "http://a b"] {
            let e = public_api_url(Some(bad), addr).unwrap_err().to_string();
            assert!(e.contains("--public-api-url"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_duration_option_is_checked_against_its_bounds() {
        type Parse = fn(&str) -> Result<Duration, String>;
        let options: [(&str, Parse, &str, &str); 6] = [
            ("--start-timeout", parse_start_timeout, "1s", "1h"),
            ("--startup-boost-settle", parse_boost_settle, "100ms", "1h"),
            ("--request-timeout", parse_request_timeout, "1s", "24h"),
            ("--build-timeout", parse_build_timeout, "1s", "24h"),
            ("--log-retention", parse_log_retention, "1s", "3650d"),
            (
                "--metrics-resolution",
                parse_metrics_resolution,
                "100ms",
                "1h",
            ),
        ];
        for (field, parse, min, max) in options {
            parse(min).unwrap_or_else(|e| panic!("{field} {min}: {e}"));
            parse(max).unwrap_or_else(|e| panic!("{field} {max}: {e}"));
            for bad in ["0s", "99ms", &format!("{max}1ms"), "213503982335d", "soon"] {
                let err = parse(bad).unwrap_err();
                assert!(
                    err.starts_with(&format!("invalid {field} '{bad}'")),
                    "{err}"
                );
            }
        }
        assert!(
            parse_request_timeout("0s")
                .unwrap_err()
                .contains("must be more than zero")
        );
    }

    #[test]
    fn log_max_size_is_checked_against_its_bounds() {
        assert_eq!(parse_size("1MB"), Ok(1 << 20));
        assert_eq!(parse_size("100MB"), Ok(100 << 20));
        assert_eq!(parse_size("1TB"), Ok(1 << 40));
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        for bad in [
            "1048575",
            "1025GB",
            "2TB",
            "18446744073709551615GB",
            "99999999999999999999999",
        ] {
            let err = parse_size(bad).unwrap_err();
            assert_eq!(
                err,
                format!("invalid --log-max-size '{bad}': must be between 1MB and 1TB")
            );
        }
        assert!(
            parse_size("10XB")
                .unwrap_err()
                .contains("unknown size unit")
        );
        assert!(parse_size("MB").unwrap_err().contains("not a size"));
    }
}
