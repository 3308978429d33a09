//! Network namespaces for instances and builds. Each gets a veth pair on its own /30, so it can
//! open connections out (NAT) and reach the host by a stable address, while the gateway reaches
//! the app on the namespace's *loopback* by creating its sockets inside the namespace: apps that
//! bind 127.0.0.1 (uvicorn's default) work unchanged.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsFd;
use std::process::Stdio;
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

/// Hands out /30 slots. Slots are process-local: on start the server removes every namespace
/// it finds with our prefix, so nothing from an earlier run can collide.
#[derive(Debug, Default)]
pub struct NetNsPool {
    used: Mutex<Vec<bool>>,
}

impl NetNsPool {
    pub fn new() -> Arc<NetNsPool> {
        Arc::new(NetNsPool {
            used: Mutex::new(vec![false; SLOTS]),
        })
    }

    /// Creates namespace `hoist-<key>` with its veth and routes. `key` must be at most 13
    /// characters so the veth name stays within IFNAMSIZ.
    pub async fn create(self: &Arc<Self>, key: &str) -> Result<NetNs, SandboxError> {
        let slot = self.take()?;
        match NetNs::create(self.clone(), slot, key).await {
            Ok(ns) => Ok(ns),
            Err(e) => {
                self.release(slot);
                Err(e)
            }
        }
    }

    fn take(&self) -> Result<usize, SandboxError> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let slot = used
            .iter()
            .position(|u| !u)
            .ok_or(SandboxError::NoSlot(SLOTS))?;
        used[slot] = true;
        Ok(slot)
    }

    fn release(&self, slot: usize) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = used.get_mut(slot) {
            *u = false;
        }
    }

    /// Removes namespaces and veths left by a previous run of the server.
    pub async fn remove_stale() {
        if let Ok(entries) = std::fs::read_dir("/run/netns") {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().to_string();
                if name.starts_with(NETNS_PREFIX) {
                    let _ = ip(&["netns", "del", &name]).await;
                }
            }
        }
    }
}

#[derive(Debug)]
pub struct NetNs {
    name: String,
    file: File,
    slot: usize,
    pool: Arc<NetNsPool>,
}

fn slot_addrs(slot: usize) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(10, 213, 0, 0)) + (slot as u32) * 4;
    (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

impl NetNs {
    async fn create(pool: Arc<NetNsPool>, slot: usize, key: &str) -> Result<NetNs, SandboxError> {
        let name = format!("{NETNS_PREFIX}{key}");
        let veth = format!("{VETH_PREFIX}{key}");
        let (host, guest) = slot_addrs(slot);
        // Two `ip -batch` runs instead of eight `ip` runs: process start is most of the cost.
        let host_side = format!(
            "netns add {name}\n\
             link add {veth} type veth peer name eth0 netns {name}\n\
             addr add {host}/30 dev {veth}\n\
             link set {veth} up\n"
        );
        if let Err(e) = ip_batch(None, &host_side).await {
            let _ = ip(&["netns", "del", &name]).await;
            return Err(e);
        }
        let ns_side = format!(
            "link set lo up\n\
             addr add {guest}/30 dev eth0\n\
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
            pool,
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
        let ns = self.file.try_clone()?;
        let std_sock = tokio::task::spawn_blocking(move || socket_in(&ns))
            .await
            .map_err(io::Error::other)??;
        let sock = TcpSocket::from_std_stream(std_sock);
        let stream = sock
            .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await?;
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
        self.pool.release(self.slot);
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
