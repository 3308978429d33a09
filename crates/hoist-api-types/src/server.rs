//! From the server's own rows into the wire types (feature `server`): the store's records
//! stay the store's, and what the API answers is decided here, in one place.

use crate::*;

impl From<hoist_store::UploadRecord> for Upload {
    fn from(r: hoist_store::UploadRecord) -> Self {
        Upload {
            id: r.id,
            service: r.service,
            commit: r.commit,
            bytes_received: r.bytes_received,
            bytes_stored: r.bytes_stored,
            already_stored: r.already_stored,
            created_at: r.created_at,
        }
    }
}

impl From<hoist_store::StepRecord> for DeploymentStep {
    fn from(r: hoist_store::StepRecord) -> Self {
        DeploymentStep {
            step: r.step,
            state: r.state,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

impl From<hoist_store::DeploymentRecord> for Deployment {
    fn from(r: hoist_store::DeploymentRecord) -> Self {
        Deployment {
            id: r.id,
            service: r.service,
            state: r.state,
            source: r.source,
            branch: r.branch,
            commit_sha: r.commit_sha,
            request: r.request,
            spec: r.spec,
            image: r.image,
            runtime_version: r.runtime_version,
            failure_reason: r.failure_reason,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            steps: r.steps.into_iter().map(Into::into).collect(),
            trigger: r.trigger,
            rolled_back_at: r.rolled_back_at,
            static_files: r.static_folder,
        }
    }
}

impl From<hoist_store::ServiceRecord> for ServiceRecord {
    fn from(r: hoist_store::ServiceRecord) -> Self {
        ServiceRecord {
            name: r.name,
            spec: r.spec,
            live_deployment: r.live_deployment,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

impl From<hoist_store::TokenRecord> for TokenInfo {
    fn from(r: hoist_store::TokenRecord) -> Self {
        TokenInfo {
            id: r.id,
            name: r.name,
            role: r.role,
            service: r.service,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

impl From<hoist_store::InstanceUsage> for InstanceUsage {
    fn from(u: hoist_store::InstanceUsage) -> Self {
        InstanceUsage {
            active_ms: u.active_ms,
            frozen_ms: u.frozen_ms,
            cpu_ms: u.cpu_ms,
            requests: u.requests,
        }
    }
}

impl From<hoist_store::InstanceRecord> for Instance {
    fn from(r: hoist_store::InstanceRecord) -> Self {
        Instance {
            id: r.id,
            service: r.service,
            deployment: r.deployment,
            state: r.state,
            created_at: r.created_at,
            ready_at: r.ready_at,
            stopped_at: r.stopped_at,
            exit_reason: r.exit_reason,
            cold: r.cold,
            memory_mb: r.memory_mb,
            usage: r.usage.into(),
        }
    }
}

impl From<hoist_store::LogLine> for LogLine {
    fn from(l: hoist_store::LogLine) -> Self {
        LogLine {
            id: l.id,
            service: l.service,
            deployment: l.deployment,
            instance: l.instance,
            stream: l.stream,
            ts: l.ts,
            line: l.line,
        }
    }
}

impl From<hoist_store::EventRecord> for EventRecord {
    fn from(e: hoist_store::EventRecord) -> Self {
        EventRecord {
            id: e.id,
            service: e.service,
            ts: e.ts,
            kind: e.kind,
            instance: e.instance,
            deployment: e.deployment,
            detail: e.detail,
            context: e.context,
        }
    }
}

impl From<hoist_store::MinuteMetrics> for MinuteMetrics {
    fn from(m: hoist_store::MinuteMetrics) -> Self {
        MinuteMetrics {
            minute: m.minute,
            requests: m.requests,
            errors: m.errors,
            p50_ms: m.p50_ms,
            p95_ms: m.p95_ms,
            p99_ms: m.p99_ms,
            instances: m.instances,
            memory_mb: m.memory_mb,
            cpu_ms: m.cpu_ms,
        }
    }
}

impl From<hoist_store::UsageDay> for UsageDay {
    fn from(d: hoist_store::UsageDay) -> Self {
        UsageDay {
            day: d.day,
            active_ms: d.active_ms,
            frozen_ms: d.frozen_ms,
            cpu_ms: d.cpu_ms,
            mb_ms: d.mb_ms,
            gb_seconds: d.gb_seconds,
            requests: d.requests,
            cold_starts: d.cold_starts,
        }
    }
}

impl From<hoist_build::RuntimeInfo> for RuntimeInfo {
    fn from(r: hoist_build::RuntimeInfo) -> Self {
        RuntimeInfo {
            name: r.name,
            family: r.family,
            installed: r.installed,
            version: r.version,
            size_bytes: r.size_bytes,
            packages: r.packages,
            source: r.source,
            end_of_life: r.end_of_life,
            eol: r.eol,
            default: r.default,
            build_seconds: r.build_seconds,
        }
    }
}
