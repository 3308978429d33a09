use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hoist_sandbox::NetNs;

/// One ready instance the gateway may send requests to.
#[derive(Debug)]
pub struct Upstream {
    pub instance: String,
    pub netns: Arc<NetNs>,
    pub port: u16,
    in_flight: AtomicUsize,
}

impl Upstream {
    pub fn new(instance: String, netns: Arc<NetNs>, port: u16) -> Arc<Upstream> {
        Arc::new(Upstream {
            instance,
            netns,
            port,
            in_flight: AtomicUsize::new(0),
        })
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// Counts a request against its upstream until dropped (also when the client goes away).
pub(crate) struct InFlight(Arc<Upstream>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
pub struct Route {
    pub upstreams: Vec<Arc<Upstream>>,
    next: AtomicUsize,
}

impl Route {
    pub fn new(upstreams: Vec<Arc<Upstream>>) -> Route {
        Route {
            upstreams,
            next: AtomicUsize::new(0),
        }
    }

    /// Fewest in-flight requests wins; ties rotate so idle instances share the load.
    pub(crate) fn pick(&self) -> Option<&Arc<Upstream>> {
        let n = self.upstreams.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| &self.upstreams[(start + i) % n])
            .min_by_key(|u| u.in_flight())
    }
}

/// Service name → route, plus instance id → upstream for the connector.
#[derive(Debug, Default)]
pub struct RoutingTable {
    routes: HashMap<String, Route>,
    instances: HashMap<String, Arc<Upstream>>,
}

impl RoutingTable {
    pub fn new() -> RoutingTable {
        RoutingTable::default()
    }

    /// Adds a service; a service with no upstreams is known (503) rather than unknown (404).
    pub fn insert(&mut self, service: &str, upstreams: Vec<Arc<Upstream>>) {
        for u in &upstreams {
            self.instances.insert(u.instance.clone(), u.clone());
        }
        self.routes
            .insert(service.to_string(), Route::new(upstreams));
    }

    pub fn route(&self, service: &str) -> Option<&Route> {
        self.routes.get(service)
    }

    pub fn upstream(&self, instance: &str) -> Option<&Arc<Upstream>> {
        self.instances.get(instance)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}
