//! `/metrics`: the Prometheus text exposition. Nothing here is on the request path: the
//! gateway counts in its own atomics, and a scrape reads them (and the instances' cgroups)
//! into a snapshot that a `prometheus-client` collector encodes.

use std::sync::Arc;
use std::time::Duration;

use hoist_gateway::StatsSnapshot;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::platform::Platform;

pub(crate) use crate::stats::BuildOutcome;

#[derive(Debug)]
struct ServiceSample {
    name: String,
    stats: StatsSnapshot,
    in_flight: u64,
    waiting: u64,
    cold_starts: u64,
    ready: u64,
    frozen: u64,
    starting: u64,
    instances: Vec<InstanceSample>,
}

/// Reads one number off a service's sample.
type SampleValue = fn(&ServiceSample) -> u64;

#[derive(Debug)]
struct InstanceSample {
    id: String,
    memory_bytes: u64,
    cpu_ns: u64,
}

#[derive(Debug)]
struct Snapshot {
    services: Vec<ServiceSample>,
    builds: [u64; 3],
    build_buckets: Vec<(f64, u64)>,
    build_sum_s: f64,
    service_count: u64,
    deployment_count: u64,
    runtimes_installed: u64,
    data_dir_bytes: Option<u64>,
    log_index_lag: u64,
    cron: hoist_cron::MetricsSnapshot,
}

fn descriptor<'a>(
    encoder: &'a mut DescriptorEncoder<'_>,
    name: &'a str,
    help: &str,
    kind: MetricType,
) -> Result<prometheus_client::encoding::MetricEncoder<'a>, std::fmt::Error> {
    encoder.encode_descriptor(name, help, None, kind)
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        {
            let mut m = descriptor(
                &mut encoder,
                "hoist_requests",
                "Requests the gateway answered for a service, by status class",
                MetricType::Counter,
            )?;
            for s in &self.services {
                for (class, n) in CLASSES.iter().zip(s.stats.classes) {
                    let labels = [("service", s.name.as_str()), ("code", class)];
                    ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = descriptor(
                &mut encoder,
                "hoist_request_duration_seconds",
                "Time from a request's arrival to the end of its response body",
                MetricType::Histogram,
            )?;
            for s in &self.services {
                let labels = [("service", s.name.as_str())];
                m.encode_family(&labels)?
                    .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                        s.stats.sum_us as f64 / 1e6,
                        s.stats.requests(),
                        &s.stats.histogram_buckets(),
                        None,
                    )?;
            }
        }
        {
            let mut m = descriptor(
                &mut encoder,
                "hoist_request_body_bytes",
                "Bytes of request and response bodies through the gateway",
                MetricType::Counter,
            )?;
            for s in &self.services {
                for (dir, n) in [("in", s.stats.bytes_in), ("out", s.stats.bytes_out)] {
                    let labels = [("service", s.name.as_str()), ("direction", dir)];
                    ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        let gauges: [(&str, &str, SampleValue); 2] = [
            (
                "hoist_requests_in_flight",
                "Requests being answered by an instance now",
                |s| s.in_flight,
            ),
            (
                "hoist_requests_waiting",
                "Requests held for an instance (cold start, or every instance full)",
                |s| s.waiting,
            ),
        ];
        for (name, help, value) in gauges {
            let mut m = descriptor(&mut encoder, name, help, MetricType::Gauge)?;
            for s in &self.services {
                let labels = [("service", s.name.as_str())];
                ConstGauge::new(value(s) as i64).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = descriptor(
                &mut encoder,
                "hoist_cold_starts",
                "Instances started for a request that found none ready",
                MetricType::Counter,
            )?;
            for s in &self.services {
                let labels = [("service", s.name.as_str())];
                ConstCounter::new(s.cold_starts).encode(m.encode_family(&labels)?)?;
            }
        }
        {
            let mut m = descriptor(
                &mut encoder,
                "hoist_instances",
                "Instances of a service by state",
                MetricType::Gauge,
            )?;
            for s in &self.services {
                for (state, n) in [
                    ("ready", s.ready),
                    ("frozen", s.frozen),
                    ("starting", s.starting),
                ] {
                    let labels = [("service", s.name.as_str()), ("state", state)];
                    ConstGauge::new(n as i64).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = descriptor(
                &mut encoder,
                "hoist_instance_memory_bytes",
                "Memory an instance uses, from its cgroup",
                MetricType::Gauge,
            )?;
            for s in &self.services {
                for i in &s.instances {
                    let labels = [("service", s.name.as_str()), ("instance", i.id.as_str())];
                    ConstGauge::new(i.memory_bytes as i64).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = descriptor(
                &mut encoder,
                "hoist_instance_cpu_seconds",
                "CPU time an instance has used, from its cgroup",
                MetricType::Counter,
            )?;
            for s in &self.services {
                for i in &s.instances {
                    let labels = [("service", s.name.as_str()), ("instance", i.id.as_str())];
                    ConstCounter::new(i.cpu_ns as f64 / 1e9).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        {
            let mut m = descriptor(
                &mut encoder,
                "hoist_builds",
                "Builds finished since the server started, by result",
                MetricType::Counter,
            )?;
            for (result, n) in ["succeeded", "failed", "cancelled"].iter().zip(self.builds) {
                let labels = [("result", *result)];
                ConstCounter::new(n).encode(m.encode_family(&labels)?)?;
            }
        }
        descriptor(
            &mut encoder,
            "hoist_build_duration_seconds",
            "How long builds took, fetch to image",
            MetricType::Histogram,
        )?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.build_sum_s,
            self.builds.iter().sum(),
            &self.build_buckets,
            None,
        )?;
        {
            let mut m = descriptor(
                &mut encoder,
                "hoist_cron_runs",
                "Cron run attempts since the server started, by service, job and result (ok, failed, retried, skipped, missed)",
                MetricType::Counter,
            )?;
            for (service, job, result, n) in &self.cron.runs {
                let labels = [
                    ("service", service.as_str()),
                    ("job", job.as_str()),
                    ("result", result),
                ];
                ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
            }
        }
        descriptor(
            &mut encoder,
            "hoist_cron_lag_seconds",
            "Time from a cron run's scheduled time to its request being sent",
            MetricType::Histogram,
        )?
        .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.cron.lag_sum_s,
            self.cron.lag_count,
            &self.cron.lag_buckets,
            None,
        )?;
        let mut platform = vec![
            ("hoist_services", "Services", self.service_count),
            (
                "hoist_deployments",
                "Deployments on record",
                self.deployment_count,
            ),
            (
                "hoist_runtimes_installed",
                "Runtimes built and ready",
                self.runtimes_installed,
            ),
            (
                "hoist_log_index_lag_lines",
                "Log lines stored but not yet in the search index (searched by a scan meanwhile)",
                self.log_index_lag,
            ),
        ];
        if let Some(b) = self.data_dir_bytes {
            platform.push(("hoist_data_dir_bytes", "Disk used by the data dir", b));
        }
        for (name, help, v) in platform {
            ConstGauge::new(v as i64).encode(descriptor(
                &mut encoder,
                name,
                help,
                MetricType::Gauge,
            )?)?;
        }
        Ok(())
    }
}

impl Platform {
    /// The Prometheus text exposition of everything `/metrics` shows.
    pub fn prometheus_text(&self) -> Result<String, crate::error::ControlError> {
        let (service_count, deployment_count) = self.store.platform_counts()?;
        let services = {
            let services = self.state();
            services
                .iter()
                .map(|(name, state)| {
                    let (ready, frozen, _) = state.pool.instance_states();
                    let instances = state
                        .live
                        .iter()
                        .flat_map(|l| l.instances.iter())
                        .map(|i| {
                            let c = i.shared.stats();
                            InstanceSample {
                                id: i.shared.id.to_string(),
                                memory_bytes: c.memory_bytes,
                                cpu_ns: c.cpu_usage_ns,
                            }
                        })
                        .collect();
                    ServiceSample {
                        name: name.to_string(),
                        stats: state.pool.stats().snapshot(),
                        in_flight: state.pool.in_flight(),
                        waiting: u64::from(state.pool.waiting()),
                        cold_starts: state.pool.cold_starts(),
                        ready: ready as u64,
                        frozen: frozen as u64,
                        starting: u64::from(state.pool.starting()),
                        instances,
                    }
                })
                .collect::<Vec<_>>()
        };
        let builds = self.build_stats.snapshot();
        let snapshot = Snapshot {
            services,
            builds: builds.counts,
            build_buckets: builds.buckets,
            build_sum_s: builds.sum_s,
            service_count,
            deployment_count,
            runtimes_installed: self.runtimes.list().iter().filter(|r| r.installed).count() as u64,
            data_dir_bytes: self.data_dir_size.get(),
            log_index_lag: self.store.log_index_lag()?,
            cron: self.cron_metrics(),
        };
        let mut registry = Registry::default();
        registry.register_collector(Box::new(snapshot));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(text)
    }

    /// Measures the data dir now and then for `hoist_data_dir_bytes`.
    pub(crate) async fn measure_data_dir(self: Arc<Self>) {
        loop {
            let dir = self.config.data_dir.clone();
            let walk = tokio::task::spawn_blocking(move || crate::rollout::disk_usage(&dir));
            // A big tree takes a while to walk; a stop does not wait for the figure.
            tokio::select! {
                walked = walk => if let Ok(bytes) = walked {
                    self.data_dir_size.set(bytes);
                },
                _ = self.shutdown.cancelled() => return,
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(300)) => {}
                _ = self.shutdown.cancelled() => return,
            }
        }
    }
}
