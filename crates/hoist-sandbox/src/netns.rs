//! Network namespaces for instances and builds. Each gets a veth pair on its own /30, so it can
//! open connections out (NAT) and reach the host by a stable address, while the gateway reaches
//! the app on the namespace's *loopback* by creating its sockets inside the namespace: apps that
//! bind 127.0.0.1 (uvicorn's default) work unchanged.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use nix::sched::{CloneFlags, setns};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::SandboxError;

/// Every instance and build address comes from here; host side .1, namespace side .2 of a /30.
pub const SUBNET: &str = "10.213.0.0/16";
const SLOTS: usize = 16_384;
pub const NETNS_PREFIX: &str = "hoist-";
pub const VETH_PREFIX: &str = "hh";

/// Network namespaces, created ahead of need. Setting one up costs two `ip` processes
/// (~9 ms); a few spares made in the background take that off the cold-start path.
///
/// /30 slots are claimed host-wide: several servers (the test suite runs many) share one
/// kernel routing table, so a slot is claimed by creating `/run/hoist/net/<slot>` exclusively.
/// The file names the namespace; a claim whose namespace no longer exists (its server was
/// killed) is stale and may be taken over.
#[derive(Debug)]
pub struct NetNsPool {
    spares: Mutex<Vec<NetNs>>,
    /// One marker file per spare, so a restarted server can remove spares it left behind.
    spare_dir: PathBuf,
    target: usize,
    refilling: AtomicBool,
    /// Set by [`NetNsPool::drain`]: no spare is made after it, so none outlives the server.
    closed: AtomicBool,
    /// The interface group of every host-side veth made here: the server's host filter
    /// (`HostInput`) matches on it.
    group: u32,
}

const SLOT_DIR: &str = "/run/hoist/net";
const REFILL_DELAY: std::time::Duration = std::time::Duration::from_millis(250);

impl NetNsPool {
    pub fn new(spare_dir: PathBuf, target: usize, group: u32) -> Arc<NetNsPool> {
        Arc::new(NetNsPool {
            spares: Mutex::new(Vec::new()),
            spare_dir,
            target,
            refilling: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            group,
        })
    }

    /// A ready namespace: a spare if there is one (then a refill starts in the background),
    /// else a new one.
    pub async fn take(self: &Arc<Self>) -> Result<NetNs, SandboxError> {
        let spare = self.spares.lock().unwrap_or_else(|p| p.into_inner()).pop();
        self.refill();
        match spare {
            Some(ns) => {
                let _ = std::fs::remove_file(self.spare_dir.join(&ns.name));
                Ok(ns)
            }
            None => self.create(&fresh_key()).await,
        }
    }

    /// Tops the spares up to the target, once at a time.
    pub fn refill(self: &Arc<Self>) {
        if self.target == 0
            || self.closed.load(Ordering::Acquire)
            || self.refilling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            // Not while the start that took a spare is booting: on two cores the two `ip`
            // processes would slow exactly the start the spare was meant to speed up.
            tokio::time::sleep(REFILL_DELAY).await;
            while !pool.closed.load(Ordering::Acquire)
                && pool.spares.lock().unwrap_or_else(|p| p.into_inner()).len() < pool.target
            {
                let key = fresh_key();
                let marker = pool.spare_dir.join(format!("{NETNS_PREFIX}{key}"));
                if std::fs::create_dir_all(&pool.spare_dir)
                    .and_then(|()| std::fs::write(&marker, ""))
                    .is_err()
                {
                    break;
                }
                match pool.create(&key).await {
                    Ok(ns) => pool
                        .spares
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(ns),
                    Err(e) => {
                        let _ = std::fs::remove_file(&marker);
                        tracing::warn!(error = %e, "pre-creating a network namespace");
                        break;
                    }
                }
            }
            pool.refilling.store(false, Ordering::Release);
        });
    }

    /// Removes the spares (on shutdown), so they do not outlive the server; a refill that is
    /// making one is waited for (bounded), as what it makes would otherwise be left behind.
    pub async fn drain(&self) {
        self.closed.store(true, Ordering::Release);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.refilling.load(Ordering::Acquire) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let spares = std::mem::take(&mut *self.spares.lock().unwrap_or_else(|p| p.into_inner()));
        for ns in spares {
            let _ = ns.remove().await;
            let _ = std::fs::remove_file(self.spare_dir.join(&ns.name));
        }
    }

    /// Removes spares an earlier run of this server left behind.
    pub async fn remove_stale_spares(&self) {
        if let Ok(entries) = std::fs::read_dir(&self.spare_dir) {
            for entry in entries.flatten() {
                Self::remove_stale(&entry.file_name().to_string_lossy()).await;
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Creates namespace `hoist-<key>` with its veth and routes. `key` must be at most 13
    /// characters so the veth name stays within IFNAMSIZ.
    async fn create(&self, key: &str) -> Result<NetNs, SandboxError> {
        let name = format!("{NETNS_PREFIX}{key}");
        let slot = take_slot(&name)?;
        match NetNs::create(slot, key, self.group).await {
            Ok(ns) => Ok(ns),
            Err(e) => {
                release_slot(slot, &name);
                Err(e)
            }
        }
    }

    /// Removes namespace `name` and its slot claim if an earlier run left them behind.
    pub async fn remove_stale(name: &str) {
        let _ = ip(&["netns", "del", name]).await;
        if let Ok(entries) = std::fs::read_dir(SLOT_DIR) {
            for entry in entries.flatten() {
                if std::fs::read_to_string(entry.path()).is_ok_and(|owner| owner.trim() == name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// Ten hex digits, unique enough across servers on one host for interface names.
fn fresh_key() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed = nanos
        ^ (u64::from(std::process::id()) << 24)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:010x}", mixed & 0xff_ffff_ffff)
}

fn take_slot(name: &str) -> Result<usize, SandboxError> {
    std::fs::create_dir_all(SLOT_DIR).map_err(SandboxError::io(format!("creating {SLOT_DIR}")))?;
    let start = (std::process::id() as usize).wrapping_mul(7919) % SLOTS;
    for i in 0..SLOTS {
        let slot = (start + i) % SLOTS;
        let path = format!("{SLOT_DIR}/{slot}");
        match std::fs::File::create_new(&path) {
            Ok(mut f) => {
                use std::io::Write;
                let _ = f.write_all(name.as_bytes());
                return Ok(slot);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if is_stale(&path) {
                    let _ = std::fs::remove_file(&path);
                    if let Ok(mut f) = std::fs::File::create_new(&path) {
                        use std::io::Write;
                        let _ = f.write_all(name.as_bytes());
                        return Ok(slot);
                    }
                }
            }
            Err(e) => return Err(SandboxError::io(format!("claiming {path}"))(e)),
        }
    }
    Err(SandboxError::NoSlot(SLOTS))
}

/// A claim is stale when its namespace is gone and it is old enough not to be mid-creation.
fn is_stale(path: &str) -> bool {
    let Ok(owner) = std::fs::read_to_string(path) else {
        return false;
    };
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > std::time::Duration::from_secs(30));
    old && !std::path::Path::new("/run/netns")
        .join(owner.trim())
        .exists()
}

/// Releases a claim, but only our own: a claim taken over as stale belongs to someone else.
fn release_slot(slot: usize, name: &str) {
    let path = format!("{SLOT_DIR}/{slot}");
    if std::fs::read_to_string(&path).is_ok_and(|owner| owner.trim() == name) {
        let _ = std::fs::remove_file(path);
    }
}

#[derive(Debug)]
pub struct NetNs {
    name: String,
    file: File,
    slot: usize,
    /// Set for [`NetNs::in_process`]: where every connection goes instead.
    redirect: Option<SocketAddr>,
}

fn slot_addrs(slot: usize) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)).wrapping_add((slot as u32).wrapping_mul(4));
    (
        Ipv4Addr::from(base.wrapping_add(1)),
        Ipv4Addr::from(base.wrapping_add(2)),
    )
}

impl NetNs {
    async fn create(slot: usize, key: &str, group: u32) -> Result<NetNs, SandboxError> {
        let name = format!("{NETNS_PREFIX}{key}");
        let veth = format!("{VETH_PREFIX}{key}");
        let (host, guest) = slot_addrs(slot);
        // Two `ip -batch` runs instead of eight `ip` runs: process start is most of the cost.
        // No IPv6 link-local addresses on the pair: instance networking and its filter (see
        // `host`) are IPv4 only, and an app bound to `::` would answer on fe80:: otherwise.
        // The group, set before the link is up, is what the host filter knows this server by.
        let host_side = format!(
            "netns add {name}\n\
             link add {veth} type veth peer name eth0 netns {name}\n\
             link set {veth} group {group}\n\
             addr add {host}/30 dev {veth}\n\
             link set {veth} addrgenmode none\n\
             link set {veth} up\n"
        );
        if let Err(e) = ip_batch(None, &host_side).await {
            let _ = ip(&["netns", "del", &name]).await;
            return Err(e);
        }
        let ns_side = format!(
            "link set lo up\n\
             addr add {guest}/30 dev eth0\n\
             link set eth0 addrgenmode none\n\
             link set eth0 up\n\
             route add default via {host}\n"
        );
        if let Err(e) = ip_batch(Some(&name), &ns_side).await {
            let _ = ip(&["netns", "del", &name]).await;
            return Err(e);
        }
        let file = File::open(format!("/run/netns/{name}")).map_err(SandboxError::io(format!(
            "opening network namespace {name}"
        )))?;
        Ok(NetNs {
            name,
            file,
            slot,
            redirect: None,
        })
    }

    /// The server's own network namespace: connections go to the host's loopback. For tests
    /// and tools that put a server on the host behind the gateway; it owns no slot.
    pub fn host() -> io::Result<NetNs> {
        Ok(NetNs {
            name: "host".into(),
            file: File::open("/proc/self/ns/net")?,
            slot: usize::MAX,
            redirect: None,
        })
    }

    /// A stand-in that reaches one listener of this process: every connection goes to `addr`,
    /// whatever port is asked for, without entering any namespace. For tests of the code
    /// above the sandbox (the control plane's fake instances), which run without privileges.
    pub fn in_process(addr: SocketAddr) -> io::Result<NetNs> {
        Ok(NetNs {
            name: format!("in-process-{}", addr.port()),
            file: File::open("/proc/self/ns/net")?,
            slot: usize::MAX,
            redirect: Some(addr),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// The host's address as seen from inside: what `host.hoist.internal` resolves to.
    pub fn host_addr(&self) -> Ipv4Addr {
        slot_addrs(self.slot).0
    }

    pub fn guest_addr(&self) -> Ipv4Addr {
        slot_addrs(self.slot).1
    }

    /// Opens a TCP connection to `127.0.0.1:port` inside the namespace.
    pub async fn connect(&self, port: u16) -> io::Result<TcpStream> {
        if let Some(addr) = self.redirect {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            return Ok(stream);
        }
        self.connect_to(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
    }

    /// Opens a TCP connection to `addr` from inside the namespace.
    pub(crate) async fn connect_to(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let ns = self.file.try_clone()?;
        let std_sock = tokio::task::spawn_blocking(move || socket_in(&ns))
            .await
            .map_err(io::Error::other)??;
        let sock = TcpSocket::from_std_stream(std_sock);
        let stream = sock.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Deletes the namespace (and with it the veth pair). Sockets already open inside keep
    /// working until closed; the /30 slot is reused only once the last reference is dropped.
    pub async fn remove(&self) -> Result<(), SandboxError> {
        match ip(&["netns", "del", &self.name]).await {
            Err(SandboxError::Command { stderr, .. }) if stderr.contains("No such file") => Ok(()),
            other => other,
        }
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        release_slot(self.slot, &self.name);
    }
}

fn host_netns() -> io::Result<&'static File> {
    static HOST: OnceLock<File> = OnceLock::new();
    if let Some(f) = HOST.get() {
        return Ok(f);
    }
    // /proc/self is the thread-group leader, which never leaves the host namespace.
    let f = File::open("/proc/self/ns/net")?;
    Ok(HOST.get_or_init(|| f))
}

/// A socket belongs to the namespace it was created in; connect() may happen anywhere after.
fn socket_in(ns: &File) -> io::Result<std::net::TcpStream> {
    let host = host_netns()?;
    setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
    let created = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    );
    if let Err(e) = setns(host.as_fd(), CloneFlags::CLONE_NEWNET) {
        // A pool thread stuck in an instance's namespace would misroute every later socket.
        tracing::error!(error = %e, "cannot return to the host network namespace");
        std::process::abort();
    }
    let fd = created.map_err(io::Error::from)?;
    Ok(std::net::TcpStream::from(fd))
}

async fn ip(args: &[&str]) -> Result<(), SandboxError> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(SandboxError::io("running ip"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SandboxError::Command {
            command: format!("ip {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

async fn ip_batch(netns: Option<&str>, script: &str) -> Result<(), SandboxError> {
    let mut cmd = tokio::process::Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["-n", ns]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(SandboxError::io("running ip -batch"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(SandboxError::io("writing to ip -batch"))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(SandboxError::io("waiting for ip -batch"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(SandboxError::Command {
            command: format!("ip -batch ({})", script.lines().next().unwrap_or_default()),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_in_process_namespace_reaches_its_listener_whatever_the_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ns = NetNs::in_process(listener.local_addr().unwrap()).unwrap();
        let (client, server) = tokio::join!(ns.connect(8080), listener.accept());
        assert_eq!(
            client.unwrap().local_addr().unwrap(),
            server.unwrap().1,
            "the connection went to another listener"
        );
    }

    /// Makes real namespaces: needs root, as the whole suite does.
    #[tokio::test]
    async fn no_spare_outlives_a_drain_not_even_one_being_made() {
        let dir = std::env::temp_dir().join(format!("hoist-spares-{}", std::process::id()));
        let pool = NetNsPool::new(dir.clone(), 2, 1);
        // The refill waits before it makes anything: the drain comes in that window.
        pool.refill();
        pool.drain().await;
        tokio::time::sleep(REFILL_DELAY * 4).await;
        let left: Vec<NetNs> = std::mem::take(&mut *pool.spares.lock().unwrap());
        for ns in &left {
            let _ = ns.remove().await;
        }
        let markers = std::fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!((left.len(), markers), (0, 0), "spares made after the drain");

        // A pool not drained does make its spares.
        let pool = NetNsPool::new(dir.clone(), 1, 1);
        pool.refill();
        tokio::time::sleep(REFILL_DELAY).await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while pool.spares.lock().unwrap().is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let made = pool.spares.lock().unwrap().len();
        pool.drain().await;
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(made, 1);
    }
}
