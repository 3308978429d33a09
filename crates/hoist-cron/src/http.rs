//! Runs as real HTTP requests to the gateway's own listener, addressed to the service's host
//! (`NAME.<domain>`): the activator starts or thaws an instance as for any request, and the
//! access log and the request metrics see each run. The gateway tells a run by its
//! `X-Hoist-Cron-Job` header and counts it as activity only while it is in flight, as it does
//! for `/kaithhealth`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use hoist_core::ServiceName;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue, USER_AGENT};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{Answer, Call, Runner};

/// The headers of a run.
pub const JOB_HEADER: &str = "x-hoist-cron-job";
pub const SCHEDULE_HEADER: &str = "x-hoist-schedule-time";
pub const EXECUTION_HEADER: &str = "x-hoist-execution-id";
/// The instance that answered, which the gateway adds to a run's response.
pub const INSTANCE_HEADER: &str = "x-hoist-instance";

/// Each service's cron secret, sent as `Authorization: Bearer …`.
pub trait Secrets: Send + Sync + 'static {
    fn secret(&self, service: &ServiceName) -> Option<String>;
}

pub struct GatewayRunner {
    client: Client<HttpConnector, Empty<Bytes>>,
    /// Where the gateway listens (a wildcard address is reached on loopback).
    addr: SocketAddr,
    domain: String,
    secrets: Arc<dyn Secrets>,
}

impl GatewayRunner {
    pub fn new(addr: SocketAddr, domain: String, secrets: Arc<dyn Secrets>) -> GatewayRunner {
        let mut addr = addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        let mut connector = HttpConnector::new();
        // A run's request is small and its answer waited for: no Nagle delay on it.
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        GatewayRunner {
            client,
            addr,
            domain,
            secrets,
        }
    }

    fn request(&self, call: &Call) -> Result<Request<Empty<Bytes>>, String> {
        let uri = format!("http://{}{}", self.addr, call.path.as_str());
        let host = format!("{}.{}:{}", call.service, self.domain, self.addr.port());
        let scheduled = jiff::Timestamp::from_millisecond(call.scheduled_ms)
            .map_err(|e| e.to_string())?
            .to_string();
        let mut builder = Request::builder()
            .method(call.method.as_str())
            .uri(uri)
            .header(HOST, host)
            .header(USER_AGENT, HeaderValue::from_static("hoist-cron"))
            .header(JOB_HEADER, call.job.as_str())
            .header(SCHEDULE_HEADER, scheduled)
            .header(EXECUTION_HEADER, call.execution.as_str())
            .header("x-hoist-cron-attempt", call.attempt.to_string());
        if let Some(secret) = self.secrets.secret(&call.service) {
            builder = builder.header(AUTHORIZATION, format!("Bearer {secret}"));
        }
        builder.body(Empty::new()).map_err(|e| e.to_string())
    }
}

impl Runner for GatewayRunner {
    fn call(&self, call: Call) -> BoxFuture<'static, Answer> {
        let request = self.request(&call);
        let client = self.client.clone();
        Box::pin(async move {
            let request = match request {
                Ok(r) => r,
                Err(e) => {
                    return Answer {
                        error: Some(e),
                        ..Answer::default()
                    };
                }
            };
            match client.request(request).await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let instance = response
                        .headers()
                        .get(INSTANCE_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    // Read to its end: the run is in flight until its answer is complete.
                    let mut body = response.into_body();
                    while let Some(frame) = body.frame().await {
                        if let Err(e) = frame {
                            return Answer {
                                status: Some(status),
                                instance,
                                error: Some(format!("the answer broke off: {e}")),
                            };
                        }
                    }
                    Answer {
                        status: Some(status),
                        instance,
                        error: None,
                    }
                }
                Err(e) => Answer {
                    error: Some(e.to_string()),
                    ..Answer::default()
                },
            }
        })
    }
}
