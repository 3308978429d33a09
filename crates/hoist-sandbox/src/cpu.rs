//! Changing a running sandbox's CPU quota (the startup boost of issue 15).
//!
//! The quota is crun's: it writes `config.json`'s `cpu.quota`/`cpu.period` into the
//! container's own cgroup, the child `ctr` of the one Hoist owns (`cgroup.rs`). Changing it
//! later is one write to that same file: `cpu.cfs_quota_us` in the v1 `cpu` hierarchy, or
//! `cpu.max` ("QUOTA PERIOD") on a v2 host. That is what `crun update --cpu-quota` does too,
//! after starting a process and reading its state: measured here (2026-12-02, a loaded
//! machine), the write took 12 µs and `crun update` 23 ms for its process alone, before it
//! even found a container; the write is on the path of every start.

use std::path::{Path, PathBuf};

use hoist_core::{CPU_PERIOD_US, cpu_quota_us};

/// One sandbox's CPU quota, as a handle that outlives borrows of the sandbox.
#[derive(Debug, Clone)]
pub struct CpuQuota {
    /// The container's cgroup (`.../ctr`) in the hierarchy that has the cpu controller.
    dir: PathBuf,
    v1: bool,
}

impl CpuQuota {
    /// The quota of the sandbox whose owned cgroup is `rel` (`hoist/i-…`).
    pub(crate) fn new(rel: &str) -> CpuQuota {
        let rel = rel.trim_matches('/');
        // v1: the cpu controller is mounted at `cpu` (its own hierarchy, or a link to a
        // shared `cpu,cpuacct` one); otherwise the unified hierarchy has it.
        let v1_root = Path::new("/sys/fs/cgroup/cpu");
        let v1 = v1_root.join("cpu.cfs_quota_us").exists();
        let base = if v1 {
            v1_root.to_path_buf()
        } else {
            PathBuf::from("/sys/fs/cgroup")
        };
        CpuQuota {
            dir: base.join(rel).join("ctr"),
            v1,
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.join(if self.v1 {
            "cpu.cfs_quota_us"
        } else {
            "cpu.max"
        })
    }

    /// Sets the quota to `millicores` of a core per period (the period stays crun's, the
    /// kernel's default 100 ms), computed as the bundle computes it.
    pub fn set_millicores(&self, millicores: u32) -> std::io::Result<()> {
        let quota = cpu_quota_us(millicores, CPU_PERIOD_US);
        let text = if self.v1 {
            quota.to_string()
        } else {
            format!("{quota} {CPU_PERIOD_US}")
        };
        std::fs::write(self.file(), text)
    }

    /// The quota now, in millicores; `None` when it cannot be read (the sandbox is gone) or
    /// there is none.
    pub fn millicores(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.file()).ok()?;
        parse_millicores(&text, self.v1)
    }

    /// The file the quota is in, for tests that read it themselves.
    pub fn path(&self) -> PathBuf {
        self.file()
    }
}

/// Millicores from the quota file's text: v1 `QUOTA` (with the period `CPU_PERIOD_US`, which
/// is what every sandbox has), v2 `QUOTA PERIOD`; `-1`/`max` is no quota.
fn parse_millicores(text: &str, v1: bool) -> Option<u32> {
    let mut parts = text.split_whitespace();
    let quota: i64 = parts.next()?.parse().ok()?;
    let period: u64 = if v1 {
        CPU_PERIOD_US
    } else {
        parts.next()?.parse().ok()?
    };
    if quota <= 0 || period == 0 {
        return None;
    }
    u32::try_from(u128::from(quota.unsigned_abs()) * 1000 / u128::from(period)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_files_read_as_millicores() {
        assert_eq!(parse_millicores("14400\n", true), Some(144));
        assert_eq!(parse_millicores("100000", true), Some(1000));
        assert_eq!(parse_millicores("-1\n", true), None);
        assert_eq!(parse_millicores("200000 100000\n", false), Some(2000));
        assert_eq!(parse_millicores("max 100000\n", false), None);
        assert_eq!(parse_millicores("", true), None);
    }

    #[test]
    fn the_written_quota_reads_back_as_the_same_share() {
        // What set_millicores writes for each share of the memory table reads back the same.
        for millicores in [72, 144, 289, 1000, 2000] {
            let quota = cpu_quota_us(millicores, CPU_PERIOD_US);
            assert_eq!(parse_millicores(&quota.to_string(), true), Some(millicores));
            assert_eq!(
                parse_millicores(&format!("{quota} {CPU_PERIOD_US}"), false),
                Some(millicores)
            );
        }
    }
}
