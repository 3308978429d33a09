//! A gateway serving one static folder, for `bench/static.py` when no `hoist server` can
//! deploy a static site: the same `Gateway`, worker threads, `Site` and access records, with
//! the records written as lines to a file by a thread of their own (as the server's log
//! writer does).
//!
//! `static_site DIR PORT [WORKERS] [NICE]`; requests for `site.localhost` are served.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc;

use hoist_gateway::{
    AccessLog, AccessRecord, Activator, Gateway, GatewayConfig, PoolLimits, RoutingTable,
    ServicePool,
};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct NoApp;

impl Activator for NoApp {
    fn start_instance(&self, _service: &str) {}
}

struct LineLog(mpsc::Sender<Vec<AccessRecord>>);

impl AccessLog for LineLog {
    fn record(&self, batch: Vec<AccessRecord>) {
        let _ = self.0.send(batch);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir, port, rest @ ..] = args.as_slice() else {
        return Err("usage: static_site DIR PORT [WORKERS] [NICE]".into());
    };
    let workers = rest.first().map_or(Ok(1), |w| w.parse())?;
    let nice = rest.get(1).map_or(Ok(0), |n| n.parse())?;
    let scratch = std::env::temp_dir().join(format!("hoist-static-site-{}", std::process::id()));
    let store = Arc::new(hoist_static::Store::open(scratch.join("store"))?);
    let manifest = store.ingest(dir.as_ref(), &hoist_static::Limits::default())?;
    eprintln!("{} files, {} bytes", manifest.files(), manifest.bytes());
    let config = hoist_static::SiteConfig {
        has_app: false,
        ..Default::default()
    };
    let site = Arc::new(hoist_static::Site::new(store, manifest, config)?);

    let (tx, rx) = mpsc::channel::<Vec<AccessRecord>>();
    let log_path = scratch.join("access.log");
    std::thread::spawn(move || {
        let Ok(file) = std::fs::File::create(&log_path) else {
            return;
        };
        let mut out = std::io::BufWriter::new(file);
        while let Ok(batch) = rx.recv() {
            for record in batch {
                let _ = writeln!(out, "{}", record.line());
            }
            let _ = out.flush();
        }
    });

    let gw = Gateway::new(GatewayConfig {
        workers,
        nice,
        ..GatewayConfig::new("localhost")
    });
    gw.set_access_log(Arc::new(LineLog(tx)));
    let limits = PoolLimits {
        concurrency: 100,
        max_instances: 1,
    };
    let pool = ServicePool::new("site", limits, Arc::new(NoApp));
    pool.set_static(Some(site));
    let mut table = RoutingTable::new();
    table.insert(pool);
    gw.publish(table);
    let listener = Gateway::bind(format!("127.0.0.1:{port}").parse()?)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let stop = shutdown.clone();
    rt.block_on(async move {
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
        let _ = gw.serve(listener, shutdown).await;
    });
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}
