//! The gateway: a hyper reverse proxy that routes `NAME.DOMAIN` to a ready instance of the
//! service's live deployment. It reads a routing table the control loop publishes and never
//! touches the database on the request path.

mod connections;
mod headers;
pub mod listen;
mod observe;
mod proxy;
#[cfg(test)]
mod proxy_tests;
mod sendfile;
mod static_route;
#[cfg(test)]
mod static_tests;
mod table;

pub use observe::{AccessLog, AccessRecord, LATENCY_BOUNDS_S, RequestStats, StatsSnapshot};
pub use proxy::{Gateway, GatewayConfig};
pub use table::{
    Activator, Admitted, InFlight, PoolLimits, Rejection, RoutingTable, ServicePool, Traffic,
    Upstream, UpstreamState, UpstreamUsage,
};
