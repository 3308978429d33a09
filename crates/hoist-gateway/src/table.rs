//! The routing table and, per service, the pool of instances requests are balanced across.
//!
//! The request path reads only atomics and an `ArcSwap`ed list: picking an instance is a scan
//! for the fewest in-flight requests and one compare-and-swap. Everything slower (starting an
//! instance, thawing one, queueing when all are busy) is the activator's slow path in
//! [`ServicePool::acquire`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use hoist_sandbox::{Freezer, NetNs};
use tokio::sync::Notify;

/// Where an instance is in the idle lifecycle, as the gateway sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamState {
    /// Takes requests.
    Ready,
    /// The freezer is being applied; requests wait for it, then thaw it.
    Freezing,
    Frozen,
    Thawing,
    /// Being drained or stopped: takes no new requests.
    Retired,
}

impl UpstreamState {
    fn from_bits(bits: u64) -> UpstreamState {
        match bits {
            0 => UpstreamState::Ready,
            1 => UpstreamState::Freezing,
            2 => UpstreamState::Frozen,
            3 => UpstreamState::Thawing,
            _ => UpstreamState::Retired,
        }
    }

    fn bits(self) -> u64 {
        match self {
            UpstreamState::Ready => 0,
            UpstreamState::Freezing => 1,
            UpstreamState::Frozen => 2,
            UpstreamState::Thawing => 3,
            UpstreamState::Retired => 4,
        }
    }
}

/// Whether a request keeps its instance from going idle.
///
/// Health checks (an uptime monitor polling `/kaithhealth`) are answered like any request,
/// by thawing or starting an instance if need be, but do not count as activity: a service
/// polled every minute still freezes `idle_freeze` and stops `idle_stop` after its last
/// real request, as it would without the monitor.
///
/// Cron runs (the platform's scheduler, marked by `X-Hoist-Cron-Job`) follow the same rule:
/// active while in flight, but they leave the idle clock where the last user request left it,
/// so a service with an hourly job freezes and stops again right after each run. A client
/// that sends the header itself gains nothing by it: its request simply does not keep the
/// instance warm, as a `/kaithhealth` request does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    User,
    HealthCheck,
    Cron,
}

impl Traffic {
    /// The path the platform polls for readiness, and so the one monitors poll too.
    pub const HEALTH_PATH: &'static str = "/kaithhealth";
    /// The header every cron run carries.
    pub const CRON_HEADER: &'static str = "x-hoist-cron-job";

    pub fn of_path(path: &str) -> Traffic {
        if path == Traffic::HEALTH_PATH {
            Traffic::HealthCheck
        } else {
            Traffic::User
        }
    }

    /// [`Traffic::of_path`], and a cron run by its header.
    pub fn of_request(path: &str, headers: &hyper::HeaderMap) -> Traffic {
        if headers.contains_key(Traffic::CRON_HEADER) {
            Traffic::Cron
        } else {
            Traffic::of_path(path)
        }
    }
}

/// State and in-flight count share one word so that "admit a request" and "freeze because
/// idle" cannot both succeed: each is a compare-and-swap on the same value.
const STATE_SHIFT: u32 = 32;
const COUNT_MASK: u64 = (1 << STATE_SHIFT) - 1;

fn pack(state: UpstreamState, in_flight: u64) -> u64 {
    (state.bits() << STATE_SHIFT) | in_flight
}

/// Milliseconds on a process-wide monotonic clock, so instants fit in atomics.
///
/// The system's monotonic clock, except in this crate's unit tests, which read tokio's clock
/// so they can pause and advance it: their timing is then exact rather than at the mercy of a
/// busy machine. (Only there: with tokio's `test-util` on, as in any `cargo test` build of the
/// server, tokio's clock takes a lock on every read.) The epoch is a minute before first use,
/// so that no test runtime's paused clock (which starts at the system time it was made)
/// begins before it, and 0 is never a real instant (it stands for "never" below).
fn now_ms() -> u64 {
    #[cfg(not(test))]
    use std::time::Instant as Clock;
    #[cfg(test)]
    use tokio::time::Instant as Clock;
    static EPOCH: std::sync::OnceLock<Clock> = std::sync::OnceLock::new();
    let epoch = EPOCH.get_or_init(|| {
        let now = Clock::now();
        now.checked_sub(Duration::from_secs(60)).unwrap_or(now)
    });
    Clock::now().saturating_duration_since(*epoch).as_millis() as u64
}

/// One instance the gateway may send requests to.
#[derive(Debug)]
pub struct Upstream {
    /// Shared, not copied, into every access record of a request it answers.
    pub instance: Arc<str>,
    pub netns: Arc<NetNs>,
    pub port: u16,
    freezer: Option<Freezer>,
    word: AtomicU64,
    /// When the last user request finished, or the instance became ready or was thawed for
    /// one (health checks leave it alone).
    idle_since: AtomicU64,
    active_since: AtomicU64,
    active_ms: AtomicU64,
    frozen_since: AtomicU64,
    /// When a request last thawed the instance (ms, 0 for never).
    thawed_at: AtomicU64,
    frozen_ms: AtomicU64,
    requests: AtomicU64,
}

impl Upstream {
    pub fn new(
        instance: String,
        netns: Arc<NetNs>,
        port: u16,
        freezer: Option<Freezer>,
    ) -> Arc<Upstream> {
        let now = now_ms();
        Arc::new(Upstream {
            instance: instance.into(),
            netns,
            port,
            freezer,
            word: AtomicU64::new(pack(UpstreamState::Ready, 0)),
            idle_since: AtomicU64::new(now),
            active_since: AtomicU64::new(now),
            active_ms: AtomicU64::new(0),
            frozen_since: AtomicU64::new(now),
            thawed_at: AtomicU64::new(0),
            frozen_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        })
    }

    pub fn in_flight(&self) -> usize {
        (self.word.load(Ordering::Acquire) & COUNT_MASK) as usize
    }

    pub fn state(&self) -> UpstreamState {
        UpstreamState::from_bits(self.word.load(Ordering::Acquire) >> STATE_SHIFT)
    }

    /// How long no request has been in flight (zero while one is).
    pub fn idle_for(&self) -> Duration {
        if self.in_flight() > 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(now_ms().saturating_sub(self.idle_since.load(Ordering::Acquire)))
    }

    /// Time with at least one request in flight, and time frozen, so far.
    pub fn usage(&self) -> UpstreamUsage {
        let now = now_ms();
        let word = self.word.load(Ordering::Acquire);
        let mut active = self.active_ms.load(Ordering::Acquire);
        if word & COUNT_MASK > 0 {
            active += now.saturating_sub(self.active_since.load(Ordering::Acquire));
        }
        let mut frozen = self.frozen_ms.load(Ordering::Acquire);
        if UpstreamState::from_bits(word >> STATE_SHIFT) == UpstreamState::Frozen {
            frozen += now.saturating_sub(self.frozen_since.load(Ordering::Acquire));
        }
        UpstreamUsage {
            active_ms: active,
            frozen_ms: frozen,
            requests: self.requests.load(Ordering::Relaxed),
        }
    }

    /// Admits a request if the instance is ready and below `limit`.
    fn try_admit(
        self: &Arc<Self>,
        limit: u32,
        pool: &Arc<ServicePool>,
        traffic: Traffic,
    ) -> Option<InFlight> {
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            let in_flight = cur & COUNT_MASK;
            if UpstreamState::from_bits(cur >> STATE_SHIFT) != UpstreamState::Ready
                || in_flight >= u64::from(limit)
            {
                return None;
            }
            match self
                .word
                .compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    if in_flight == 0 {
                        self.active_since.store(now_ms(), Ordering::Release);
                    }
                    self.requests.fetch_add(1, Ordering::Relaxed);
                    return Some(InFlight {
                        upstream: self.clone(),
                        pool: pool.clone(),
                        traffic,
                    });
                }
                Err(actual) => cur = actual,
            }
        }
    }

    fn finish(&self, traffic: Traffic) {
        let prev = self.word.fetch_sub(1, Ordering::AcqRel);
        let last = prev & COUNT_MASK == 1;
        if !last && traffic != Traffic::User {
            return;
        }
        let now = now_ms();
        if last {
            let since = self.active_since.load(Ordering::Acquire);
            self.active_ms
                .fetch_add(now.saturating_sub(since), Ordering::AcqRel);
        }
        // Also when others are still in flight: a health check that outlasts this request
        // must not leave the idle clock at an older user request.
        if traffic == Traffic::User {
            self.idle_since.store(now, Ordering::Release);
        }
    }

    fn transition(&self, from: UpstreamState, to: UpstreamState) -> bool {
        let cur = self.word.load(Ordering::Acquire);
        if UpstreamState::from_bits(cur >> STATE_SHIFT) != from {
            return false;
        }
        let next = pack(to, cur & COUNT_MASK);
        self.word
            .compare_exchange(cur, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Freezes the instance if it is ready with nothing in flight; blocking (the kernel takes
    /// a moment to freeze), so call it off the async threads. Returns whether it froze.
    pub fn freeze(&self) -> std::io::Result<bool> {
        let Some(freezer) = &self.freezer else {
            return Ok(false);
        };
        let idle_ready = pack(UpstreamState::Ready, 0);
        if self
            .word
            .compare_exchange(
                idle_ready,
                pack(UpstreamState::Freezing, 0),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Ok(false);
        }
        match freezer.freeze() {
            Ok(()) => {
                self.frozen_since.store(now_ms(), Ordering::Release);
                self.transition(UpstreamState::Freezing, UpstreamState::Frozen);
                Ok(true)
            }
            Err(e) => {
                // Half-frozen is not a state to leave anything in.
                let _ = freezer.thaw();
                self.transition(UpstreamState::Freezing, UpstreamState::Ready);
                Err(e)
            }
        }
    }

    /// Thaws a frozen instance; `Ok(false)` if it was not frozen (someone else thawed it).
    pub fn thaw(&self) -> std::io::Result<bool> {
        self.thaw_for(Traffic::User)
    }

    /// [`Upstream::thaw`] for a request of kind `traffic`.
    fn thaw_for(&self, traffic: Traffic) -> std::io::Result<bool> {
        if !self.transition(UpstreamState::Frozen, UpstreamState::Thawing) {
            return Ok(false);
        }
        let result = match &self.freezer {
            Some(f) => f.thaw(),
            None => Ok(()),
        };
        let since = self.frozen_since.load(Ordering::Acquire);
        self.frozen_ms
            .fetch_add(now_ms().saturating_sub(since), Ordering::AcqRel);
        // Thawing for a user counts as activity: the instance is not frozen again right away.
        // Thawed for a health check, it freezes again once that is answered.
        if traffic == Traffic::User {
            self.idle_since.store(now_ms(), Ordering::Release);
        }
        match result {
            Ok(()) => {
                self.thawed_at.store(now_ms(), Ordering::Release);
                self.transition(UpstreamState::Thawing, UpstreamState::Ready);
                Ok(true)
            }
            Err(e) => {
                self.transition(UpstreamState::Thawing, UpstreamState::Retired);
                Err(e)
            }
        }
    }

    /// Whether a thaw happened in the last `window`. A process killed while frozen on cgroup
    /// v1 only dies once thawed, so a request that fails right after a thaw most likely met
    /// such a corpse rather than a bug in the app.
    pub fn thawed_within(&self, window: std::time::Duration) -> bool {
        let at = self.thawed_at.load(Ordering::Acquire);
        at != 0 && now_ms().saturating_sub(at) <= window.as_millis() as u64
    }

    /// Takes no new requests from now on (drain, stop); in-flight ones finish.
    pub fn retire(&self) {
        let mut cur = self.word.load(Ordering::Acquire);
        loop {
            let next = pack(UpstreamState::Retired, cur & COUNT_MASK);
            match self
                .word
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // A stop from frozen ends the frozen stretch; it is billed data too.
                    if UpstreamState::from_bits(cur >> STATE_SHIFT) == UpstreamState::Frozen {
                        let since = self.frozen_since.load(Ordering::Acquire);
                        self.frozen_ms
                            .fetch_add(now_ms().saturating_sub(since), Ordering::AcqRel);
                    }
                    return;
                }
                Err(actual) => cur = actual,
            }
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpstreamUsage {
    pub active_ms: u64,
    pub frozen_ms: u64,
    pub requests: u64,
}

/// A request admitted to an instance, counted until dropped (also when the client goes away).
pub struct InFlight {
    upstream: Arc<Upstream>,
    pool: Arc<ServicePool>,
    traffic: Traffic,
}

impl InFlight {
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.upstream.finish(self.traffic);
        if self.pool.waiting.load(Ordering::Acquire) > 0 {
            self.pool.changed.notify_waiters();
        }
    }
}

/// What the gateway asks of whoever runs instances (the control loop).
pub trait Activator: Send + Sync + 'static {
    /// Start one more instance of `service`; answer with [`ServicePool::start_finished`].
    fn start_instance(&self, service: &str);
}

/// Why a request got no instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// At `max_instances`, every instance at `concurrency` and the queue full or the wait
    /// over: the client should retry.
    Overloaded,
    /// The instance started for this request could not start.
    StartFailed(String),
    /// Waited the whole hold time for an instance that did not come.
    Timeout,
    /// The service has no live deployment to start instances from.
    NotDeployed,
}

/// Limits of one service as the gateway enforces them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLimits {
    pub concurrency: u32,
    pub max_instances: u32,
}

impl PoolLimits {
    /// Requests held beyond the instances' capacity: another full round of it, and never
    /// fewer than a handful.
    pub fn queue_limit(&self) -> u32 {
        self.concurrency
            .saturating_mul(self.max_instances)
            .max(MIN_QUEUE)
    }
}

const MIN_QUEUE: u32 = 10;

/// One service's instances, their in-flight requests and the requests waiting for one.
pub struct ServicePool {
    /// Shared, not copied, into every access record.
    name: Arc<str>,
    upstreams: ArcSwap<Vec<Arc<Upstream>>>,
    /// Serializes changes to `upstreams` (readers never take it).
    edit: Mutex<()>,
    concurrency: AtomicU32,
    max_instances: AtomicU32,
    deployed: AtomicBool,
    starting: AtomicU32,
    waiting: AtomicU32,
    changed: Notify,
    failure: Mutex<Option<String>>,
    failures: AtomicU64,
    cold_starts: AtomicU64,
    /// When a user request last found no instance ready (ms, 0 for never). An instance the
    /// activator starts has been idle since then: one started only to answer a health check
    /// is frozen and stopped as soon as the scaler sees it idle.
    wanted_at: AtomicU64,
    next: AtomicU32,
    activator: Arc<dyn Activator>,
    stats: crate::observe::RequestStats,
    /// The live deployment's static files, answered before any instance is acquired.
    static_site: ArcSwapOption<hoist_static::Site>,
}

impl std::fmt::Debug for ServicePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServicePool")
            .field("name", &self.name)
            .field("instances", &self.upstreams.load().len())
            .finish()
    }
}

/// Counts a request as waiting until it leaves the slow path, however it leaves.
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl ServicePool {
    pub fn new(name: &str, limits: PoolLimits, activator: Arc<dyn Activator>) -> Arc<ServicePool> {
        Arc::new(ServicePool {
            name: name.into(),
            upstreams: ArcSwap::from_pointee(Vec::new()),
            edit: Mutex::new(()),
            concurrency: AtomicU32::new(limits.concurrency.max(1)),
            max_instances: AtomicU32::new(limits.max_instances.max(1)),
            deployed: AtomicBool::new(false),
            starting: AtomicU32::new(0),
            waiting: AtomicU32::new(0),
            changed: Notify::new(),
            failure: Mutex::new(None),
            failures: AtomicU64::new(0),
            stats: crate::observe::RequestStats::default(),
            cold_starts: AtomicU64::new(0),
            wanted_at: AtomicU64::new(0),
            next: AtomicU32::new(0),
            activator,
            static_site: ArcSwapOption::empty(),
        })
    }

    /// The static files the gateway answers itself for this service (`None`: all requests
    /// go to the app). Swapped whole when a deployment goes live, read lock-free per request.
    pub fn set_static(&self, site: Option<Arc<hoist_static::Site>>) {
        self.static_site.store(site);
    }

    pub fn static_site(&self) -> Option<Arc<hoist_static::Site>> {
        self.static_site.load_full()
    }

    /// The request path's borrow of the site: no reference count touched.
    pub(crate) fn static_guard(&self) -> arc_swap::Guard<Option<Arc<hoist_static::Site>>> {
        self.static_site.load()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn shared_name(&self) -> Arc<str> {
        self.name.clone()
    }

    pub fn limits(&self) -> PoolLimits {
        PoolLimits {
            concurrency: self.concurrency.load(Ordering::Acquire),
            max_instances: self.max_instances.load(Ordering::Acquire),
        }
    }

    pub fn set_limits(&self, limits: PoolLimits) {
        self.concurrency
            .store(limits.concurrency.max(1), Ordering::Release);
        self.max_instances
            .store(limits.max_instances.max(1), Ordering::Release);
        self.changed.notify_waiters();
    }

    /// Whether instances can be started (the service has a live deployment).
    pub fn set_deployed(&self, deployed: bool) {
        self.deployed.store(deployed, Ordering::Release);
        self.changed.notify_waiters();
    }

    pub fn upstreams(&self) -> Arc<Vec<Arc<Upstream>>> {
        self.upstreams.load_full()
    }

    pub fn find(&self, instance: &str) -> Option<Arc<Upstream>> {
        self.upstreams
            .load()
            .iter()
            .find(|u| &*u.instance == instance)
            .cloned()
    }

    pub fn starting(&self) -> u32 {
        self.starting.load(Ordering::Acquire)
    }

    pub fn waiting(&self) -> u32 {
        self.waiting.load(Ordering::Acquire)
    }

    /// Instances started because a request found none ready.
    pub fn cold_starts(&self) -> u64 {
        self.cold_starts.load(Ordering::Relaxed)
    }

    /// Adds a ready instance (started by the activator or otherwise).
    pub fn add(&self, upstream: Arc<Upstream>) {
        {
            let _edit = self.edit.lock().unwrap_or_else(|p| p.into_inner());
            let mut list = Vec::clone(&self.upstreams.load());
            list.push(upstream);
            self.upstreams.store(Arc::new(list));
        }
        self.changed.notify_waiters();
    }

    /// Takes an instance out; it gets no new requests.
    pub fn remove(&self, instance: &str) -> Option<Arc<Upstream>> {
        let removed = {
            let _edit = self.edit.lock().unwrap_or_else(|p| p.into_inner());
            let mut list = Vec::clone(&self.upstreams.load());
            let pos = list.iter().position(|u| &*u.instance == instance)?;
            let removed = list.remove(pos);
            self.upstreams.store(Arc::new(list));
            removed
        };
        removed.retire();
        self.changed.notify_waiters();
        Some(removed)
    }

    /// Takes every instance out (a new deployment went live, the service is stopped).
    pub fn take_all(&self) -> Vec<Arc<Upstream>> {
        let old = {
            let _edit = self.edit.lock().unwrap_or_else(|p| p.into_inner());
            self.upstreams.swap(Arc::new(Vec::new()))
        };
        for u in old.iter() {
            u.retire();
        }
        self.changed.notify_waiters();
        Vec::clone(&old)
    }

    /// Replaces every instance at once: requests see the old set or the new one.
    pub fn replace_all(&self, upstreams: Vec<Arc<Upstream>>) -> Vec<Arc<Upstream>> {
        let old = {
            let _edit = self.edit.lock().unwrap_or_else(|p| p.into_inner());
            self.upstreams.swap(Arc::new(upstreams))
        };
        for u in old.iter() {
            u.retire();
        }
        self.changed.notify_waiters();
        Vec::clone(&old)
    }

    /// Requests answered for this service since the server started.
    pub fn stats(&self) -> &crate::observe::RequestStats {
        &self.stats
    }

    /// Requests being answered by the service's instances now.
    pub fn in_flight(&self) -> u64 {
        self.upstreams
            .load()
            .iter()
            .map(|u| u.in_flight() as u64)
            .sum()
    }

    /// Instances by state: (ready, frozen, retired-but-listed).
    pub fn instance_states(&self) -> (usize, usize, usize) {
        let list = self.upstreams.load();
        let mut counts = (0, 0, 0);
        for u in list.iter() {
            match u.state() {
                UpstreamState::Ready | UpstreamState::Freezing => counts.0 += 1,
                UpstreamState::Frozen | UpstreamState::Thawing => counts.1 += 1,
                UpstreamState::Retired => counts.2 += 1,
            }
        }
        counts
    }

    /// Wakes held requests to look again (an instance finished freezing or was thawed).
    pub fn wake(&self) {
        self.changed.notify_waiters();
    }

    /// Counts a start the control loop makes on its own (minimum instances), so the
    /// activator does not start another for the same demand.
    pub fn begin_start(&self) {
        self.starting.fetch_add(1, Ordering::AcqRel);
    }

    /// Reports how a start counted by [`ServicePool::begin_start`] or requested through the
    /// activator ended. Held requests see the failure and answer with it.
    pub fn start_finished(&self, result: Result<Arc<Upstream>, String>) {
        match result {
            Ok(upstream) => {
                self.starting.fetch_sub(1, Ordering::AcqRel);
                upstream
                    .idle_since
                    .store(self.wanted_at.load(Ordering::Acquire), Ordering::Release);
                self.add(upstream);
            }
            Err(reason) => {
                *self.failure.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
                self.failures.fetch_add(1, Ordering::AcqRel);
                self.starting.fetch_sub(1, Ordering::AcqRel);
                self.changed.notify_waiters();
            }
        }
    }

    /// Fewest in-flight requests among ready instances below the concurrency limit; ties
    /// rotate so idle instances share the load.
    fn try_pick(self: &Arc<Self>, traffic: Traffic) -> Option<InFlight> {
        let list = self.upstreams.load();
        let n = list.len();
        if n == 0 {
            return None;
        }
        let limit = self.concurrency.load(Ordering::Relaxed);
        let start = self.next.fetch_add(1, Ordering::Relaxed) as usize % n;
        // A few attempts: another request can take the last slot between scan and CAS.
        for _ in 0..4 {
            let best = (0..n)
                .map(|i| &list[(start + i) % n])
                .filter(|u| u.state() == UpstreamState::Ready)
                .min_by_key(|u| u.in_flight())?;
            if let Some(g) = best.try_admit(limit, self, traffic) {
                return Some(g);
            }
        }
        None
    }

    /// Thaws one frozen instance, if there is one; true if the caller should pick again.
    fn thaw_one(&self, traffic: Traffic) -> bool {
        let list = self.upstreams.load();
        for u in list.iter() {
            if u.state() == UpstreamState::Frozen {
                match u.thaw_for(traffic) {
                    Ok(true) => {
                        self.changed.notify_waiters();
                        return true;
                    }
                    Ok(false) => continue,
                    Err(e) => {
                        // The instance is retired and must not stay listed as if it could run.
                        tracing::warn!(service = %self.name, instance = %u.instance, error = %e, "thawing instance");
                        self.remove(&u.instance);
                        return true;
                    }
                }
            }
        }
        false
    }

    /// Whether demand exceeds what ready and starting instances can take, and another
    /// instance is allowed; if so, claims the start (one claim per unit of missing capacity,
    /// however many requests race here).
    fn claim_start(&self) -> bool {
        let limits = self.limits();
        let list = self.upstreams.load();
        let usable: Vec<&Arc<Upstream>> = list
            .iter()
            .filter(|u| u.state() != UpstreamState::Retired)
            .collect();
        let in_flight: u64 = usable.iter().map(|u| u.in_flight() as u64).sum();
        let demand = in_flight + u64::from(self.waiting.load(Ordering::Acquire));
        let starting = self.starting.load(Ordering::Acquire);
        let capacity_instances = usable.len() as u32 + starting;
        if capacity_instances >= limits.max_instances {
            return false;
        }
        if u64::from(capacity_instances) * u64::from(limits.concurrency) >= demand {
            return false;
        }
        self.starting
            .compare_exchange(starting, starting + 1, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn at_capacity(&self) -> bool {
        let limits = self.limits();
        let usable = self
            .upstreams
            .load()
            .iter()
            .filter(|u| u.state() != UpstreamState::Retired)
            .count() as u32;
        usable + self.starting.load(Ordering::Acquire) >= limits.max_instances
    }

    /// Finds an instance for one request: a ready one at once if there is room, otherwise
    /// thaws a frozen one, starts a new one, or waits (bounded in count and time) for one.
    pub async fn acquire(
        self: &Arc<Self>,
        hold: Duration,
        traffic: Traffic,
    ) -> Result<Admitted, Rejection> {
        if let Some(g) = self.try_pick(traffic) {
            return Ok(Admitted {
                guard: g,
                cold: false,
            });
        }
        if traffic == Traffic::User {
            self.wanted_at.store(now_ms(), Ordering::Release);
        }
        self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        let deadline = tokio::time::Instant::now() + hold;
        let failures_before = self.failures.load(Ordering::Acquire);
        let mut cold = false;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(g) = self.try_pick(traffic) {
                return Ok(Admitted { guard: g, cold });
            }
            if self.thaw_one(traffic) {
                continue;
            }
            if !self.deployed.load(Ordering::Acquire) {
                return Err(Rejection::NotDeployed);
            }
            let no_instances = self.upstreams.load().is_empty();
            if self.failures.load(Ordering::Acquire) != failures_before
                && no_instances
                && self.starting.load(Ordering::Acquire) == 0
            {
                let reason = self
                    .failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone()
                    .unwrap_or_else(|| "the instance did not start".into());
                return Err(Rejection::StartFailed(reason));
            }
            if self.claim_start() {
                cold = true;
                self.cold_starts.fetch_add(1, Ordering::Relaxed);
                self.activator.start_instance(&self.name);
                continue;
            }
            if self.at_capacity()
                && self.waiting.load(Ordering::Acquire) > self.limits().queue_limit()
            {
                return Err(Rejection::Overloaded);
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(if self.at_capacity() { Rejection::Overloaded } else { Rejection::Timeout });
                }
            }
        }
    }
}

/// An instance slot for one request; `cold` if an instance was started for it.
pub struct Admitted {
    pub guard: InFlight,
    pub cold: bool,
}

/// Service name → pool. Published whole by the control loop when services come and go;
/// instances come and go inside the pools without a new table.
#[derive(Debug, Default)]
pub struct RoutingTable {
    routes: HashMap<String, Arc<ServicePool>>,
}

impl RoutingTable {
    pub fn new() -> RoutingTable {
        RoutingTable::default()
    }

    pub fn insert(&mut self, pool: Arc<ServicePool>) {
        self.routes.insert(pool.name().to_string(), pool);
    }

    pub fn route(&self, service: &str) -> Option<&Arc<ServicePool>> {
        self.routes.get(service)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Records start requests; the test decides when (and whether) they finish.
    #[derive(Default)]
    struct Starts(AtomicUsize);

    impl Activator for Starts {
        fn start_instance(&self, _service: &str) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn upstream(id: &str) -> Arc<Upstream> {
        Upstream::new(id.into(), Arc::new(NetNs::host().unwrap()), 1, None)
    }

    fn pool(concurrency: u32, max_instances: u32) -> (Arc<ServicePool>, Arc<Starts>) {
        let starts = Arc::new(Starts::default());
        let p = ServicePool::new(
            "svc",
            PoolLimits {
                concurrency,
                max_instances,
            },
            starts.clone(),
        );
        p.set_deployed(true);
        (p, starts)
    }

    const HOLD: Duration = Duration::from_secs(5);

    #[tokio::test(start_paused = true)]
    async fn ready_instance_is_used_at_once_and_released_on_drop() {
        let (p, starts) = pool(2, 1);
        let u = upstream("i-1");
        p.add(u.clone());
        let a = p.acquire(HOLD, Traffic::User).await.unwrap();
        assert!(!a.cold);
        assert_eq!(u.in_flight(), 1);
        drop(a);
        assert_eq!(u.in_flight(), 0);
        assert_eq!(starts.0.load(Ordering::SeqCst), 0);
        assert_eq!(u.usage().requests, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn fewest_in_flight_wins() {
        let (p, _) = pool(10, 2);
        let (a, b) = (upstream("i-a"), upstream("i-b"));
        p.add(a.clone());
        p.add(b.clone());
        let g1 = p.acquire(HOLD, Traffic::User).await.unwrap();
        let g2 = p.acquire(HOLD, Traffic::User).await.unwrap();
        assert_eq!((a.in_flight(), b.in_flight()), (1, 1));
        drop(g1);
        let first = g2.guard.upstream().instance.clone();
        let g3 = p.acquire(HOLD, Traffic::User).await.unwrap();
        assert_ne!(
            g3.guard.upstream().instance,
            first,
            "the idle one is picked"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_cold_requests_share_one_start() {
        let (p, starts) = pool(80, 10);
        let mut waiters = Vec::new();
        for _ in 0..20 {
            let p = p.clone();
            waiters.push(tokio::spawn(async move {
                p.acquire(HOLD, Traffic::User).await.map(|a| a.cold)
            }));
        }
        // Paused time: the sleep ends only once every waiter has run as far as it can.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            starts.0.load(Ordering::SeqCst),
            1,
            "one instance for 20 requests"
        );
        assert_eq!(p.waiting(), 20);
        p.start_finished(Ok(upstream("i-new")));
        let mut cold = 0;
        for w in waiters {
            if w.await.unwrap().unwrap() {
                cold += 1;
            }
        }
        assert_eq!(
            cold, 1,
            "only the request that asked for the start counts as cold"
        );
        assert_eq!(p.waiting(), 0);
        assert_eq!(p.cold_starts(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn demand_beyond_concurrency_starts_more_instances_up_to_the_max() {
        let (p, starts) = pool(2, 3);
        let mut waiters = Vec::new();
        for _ in 0..10 {
            let p = p.clone();
            waiters.push(tokio::spawn(async move {
                p.acquire(Duration::from_millis(300), Traffic::User)
                    .await
                    .err()
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            starts.0.load(Ordering::SeqCst),
            3,
            "10 requests at 2 each, capped at 3"
        );
        for w in waiters {
            let _ = w.await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_start_answers_the_held_requests_with_its_reason() {
        let (p, _) = pool(80, 10);
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move { p.acquire(HOLD, Traffic::User).await.err() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        p.start_finished(Err("exit code 3".into()));
        assert_eq!(
            waiter.await.unwrap(),
            Some(Rejection::StartFailed("exit code 3".into()))
        );
        assert_eq!(p.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_limits_the_queue_is_bounded_and_waits_end_in_overloaded() {
        let (p, _) = pool(1, 1);
        p.add(upstream("i-1"));
        let busy = p.acquire(HOLD, Traffic::User).await.unwrap();
        // The queue holds max(1 * 1, 10) requests; the one after is refused at once.
        let mut held = Vec::new();
        for _ in 0..10 {
            let p = p.clone();
            held.push(tokio::spawn(async move {
                p.acquire(Duration::from_millis(200), Traffic::User)
                    .await
                    .err()
            }));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t = tokio::time::Instant::now();
        assert_eq!(
            p.acquire(HOLD, Traffic::User).await.err(),
            Some(Rejection::Overloaded)
        );
        // On the paused clock any wait at all would show (it would end at the hold's end).
        assert_eq!(t.elapsed(), Duration::ZERO, "refused without waiting");
        for h in held {
            assert_eq!(h.await.unwrap(), Some(Rejection::Overloaded));
        }
        assert_eq!(p.waiting(), 0);
        drop(busy);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_freed_goes_to_a_waiting_request() {
        let (p, _) = pool(1, 1);
        p.add(upstream("i-1"));
        let busy = p.acquire(HOLD, Traffic::User).await.unwrap();
        let waiter = {
            let p = p.clone();
            tokio::spawn(async move { p.acquire(HOLD, Traffic::User).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(busy);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_goes_away_while_held_leaves_no_trace() {
        let (p, _) = pool(80, 10);
        let held = {
            let p = p.clone();
            tokio::spawn(async move { p.acquire(HOLD, Traffic::User).await.is_ok() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(p.waiting(), 1);
        held.abort();
        let _ = held.await;
        assert_eq!(p.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn no_live_deployment_is_refused() {
        let (p, starts) = pool(80, 10);
        p.set_deployed(false);
        assert_eq!(
            p.acquire(HOLD, Traffic::User).await.err(),
            Some(Rejection::NotDeployed)
        );
        assert_eq!(starts.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn retired_instances_take_no_requests_and_idle_ones_cannot_be_admitted_while_freezing() {
        let (p, _) = pool(80, 10);
        let u = upstream("i-1");
        p.add(u.clone());
        assert!(u.transition(UpstreamState::Ready, UpstreamState::Freezing));
        assert!(u.try_admit(80, &p, Traffic::User).is_none());
        assert!(u.transition(UpstreamState::Freezing, UpstreamState::Frozen));
        assert!(u.thaw().unwrap());
        assert_eq!(u.state(), UpstreamState::Ready);
        assert!(u.try_admit(80, &p, Traffic::User).is_some());
        p.remove("i-1");
        assert_eq!(u.state(), UpstreamState::Retired);
        assert!(u.try_admit(80, &p, Traffic::User).is_none());
    }

    /// Moves the paused clock on by `ms`.
    async fn pass(ms: u64) {
        tokio::time::advance(Duration::from_millis(ms)).await;
    }

    #[tokio::test(start_paused = true)]
    async fn active_time_counts_only_with_requests_in_flight() {
        let (p, _) = pool(80, 10);
        let u = upstream("i-1");
        let g = u.try_admit(80, &p, Traffic::User).unwrap();
        pass(30).await;
        let g2 = u.try_admit(80, &p, Traffic::User).unwrap();
        pass(10).await;
        drop(g);
        pass(5).await;
        drop(g2);
        pass(40).await;
        let usage = u.usage();
        assert_eq!(
            usage.active_ms, 45,
            "from the first admit to the last finish"
        );
        assert_eq!(u.idle_for(), Duration::from_millis(40));
        // Busy again: counted as it goes, idle time is zero.
        let _g = u.try_admit(80, &p, Traffic::User).unwrap();
        pass(7).await;
        assert_eq!(u.usage().active_ms, 52);
        assert_eq!(u.idle_for(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn health_checks_do_not_reset_the_idle_clock() {
        let (p, _) = pool(80, 10);
        let u = upstream("i-1");
        pass(40).await;
        let health = u.try_admit(80, &p, Traffic::HealthCheck).unwrap();
        // A user request that ends while the health check is still in flight is what the
        // idle clock counts from.
        let user = u.try_admit(80, &p, Traffic::User).unwrap();
        pass(40).await;
        drop(user);
        pass(40).await;
        drop(health);
        assert_eq!(
            u.idle_for(),
            Duration::from_millis(40),
            "since the user request"
        );
        // Only health checks since: the clock goes on from the user request.
        for _ in 0..3 {
            drop(u.try_admit(80, &p, Traffic::HealthCheck).unwrap());
            pass(10).await;
        }
        assert_eq!(u.idle_for(), Duration::from_millis(70));
        // Active (billed) time counts both.
        assert_eq!(u.usage().active_ms, 80, "{:?}", u.usage());
        assert_eq!(u.usage().requests, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cron_run_is_activity_only_while_in_flight() {
        let mut headers = hyper::HeaderMap::new();
        assert_eq!(Traffic::of_request("/tasks", &headers), Traffic::User);
        headers.insert(Traffic::CRON_HEADER, "cleanup".parse().unwrap());
        assert_eq!(Traffic::of_request("/tasks", &headers), Traffic::Cron);
        let (p, _) = pool(80, 10);
        let u = upstream("i-1");
        p.add(u.clone());
        pass(40).await;
        let run = u.try_admit(80, &p, Traffic::Cron).unwrap();
        pass(100).await;
        // In flight: the instance is busy.
        assert_eq!(u.idle_for(), Duration::ZERO);
        drop(run);
        // Done: as idle as before the run, so it freezes on its old timer.
        assert_eq!(u.idle_for(), Duration::from_millis(140));
        assert_eq!(u.usage().active_ms, 100, "billed while in flight");
        // Thawed for a run, it is not counted as freshly used either.
        assert!(u.transition(UpstreamState::Ready, UpstreamState::Frozen));
        pass(30).await;
        assert!(u.thaw_for(Traffic::Cron).unwrap());
        assert_eq!(u.idle_for(), Duration::from_millis(170));
    }

    #[tokio::test(start_paused = true)]
    async fn a_thaw_for_a_health_check_leaves_the_instance_as_idle_as_it_was() {
        let (p, _) = pool(80, 10);
        let u = upstream("i-1");
        p.add(u.clone());
        assert!(u.transition(UpstreamState::Ready, UpstreamState::Frozen));
        pass(30).await;
        assert!(u.thaw_for(Traffic::HealthCheck).unwrap());
        assert_eq!(u.idle_for(), Duration::from_millis(30));
        assert!(u.transition(UpstreamState::Ready, UpstreamState::Frozen));
        pass(30).await;
        assert!(u.thaw_for(Traffic::User).unwrap());
        assert_eq!(
            u.idle_for(),
            Duration::ZERO,
            "a thaw for a user is activity"
        );
        // And the thaw is recent for exactly the window after it.
        pass(2000).await;
        assert!(u.thawed_within(Duration::from_millis(2000)));
        pass(1).await;
        assert!(!u.thawed_within(Duration::from_millis(2000)));
    }

    /// An instance started for one request of kind `traffic` that left before it was ready:
    /// its idle clock is what the pool gave it, untouched by any request.
    async fn started_for_one_that_left(traffic: Traffic) -> Arc<Upstream> {
        let (p, starts) = pool(80, 10);
        let held = tokio::spawn({
            let p = p.clone();
            async move { p.acquire(HOLD, traffic).await.is_ok() }
        });
        // Paused time: the held request has asked for its start by the time this sleep ends.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(starts.0.load(Ordering::SeqCst), 1);
        held.abort();
        let _ = held.await;
        let u = upstream("i-1");
        p.start_finished(Ok(u.clone()));
        u
    }

    #[tokio::test(start_paused = true)]
    async fn an_instance_started_only_for_a_health_check_is_idle_from_the_last_user_request() {
        // No user ever asked: idle since the clock began (a minute before its first use),
        // not since the start.
        let health = started_for_one_that_left(Traffic::HealthCheck).await;
        assert!(
            health.idle_for() >= Duration::from_secs(60),
            "{:?}",
            health.idle_for()
        );
        // A user asked 30 ms before it was ready: idle since then, to the millisecond.
        let user = started_for_one_that_left(Traffic::User).await;
        assert_eq!(user.idle_for(), Duration::from_millis(30));
    }
}
