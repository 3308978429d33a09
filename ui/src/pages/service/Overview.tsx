// The service now: where it answers, what is live, its instances with memory and CPU, cold
// starts. Refreshed every few seconds.
import { useRef } from "preact/hooks";
import type { Schemas } from "../../api/client";
import { Loading } from "../../components/Loading";
import { LoadError } from "../../components/LoadError";
import { StateBadge, inProgress } from "../../components/StateBadge";
import { Ago } from "../../components/time";
import { formatBytes, formatCount, formatDuration, shortSha } from "../../components/format";
import { serviceState } from "../../components/serviceState";
import { tabPath, type TabProps } from "./tabs";
import { isNotFound, useService } from "./useService";
import { Missing } from "./Missing";

type Live = Schemas["LiveInstanceView"];

/** CPU use since the previous refresh, as a share of one core: from each instance's CPU time. */
function useCpuRates(running: Live[] | undefined): Map<string, number> {
  const last = useRef(new Map<string, { cpu: number; at: number }>());
  const rates = useRef(new Map<string, number>());
  const seen = useRef<Live[] | undefined>(undefined);
  if (running && running !== seen.current) {
    seen.current = running;
    const now = performance.now();
    const next = new Map<string, { cpu: number; at: number }>();
    const r = new Map<string, number>();
    for (const i of running) {
      if (i.cpu_ms == null) continue;
      const prev = last.current.get(i.id);
      if (prev && now > prev.at) r.set(i.id, Math.max(0, (i.cpu_ms - prev.cpu) / (now - prev.at)));
      next.set(i.id, { cpu: i.cpu_ms, at: now });
    }
    last.current = next;
    rates.current = r;
  }
  return rates.current;
}

export function Overview({ name }: TabProps) {
  const { data: s, error, loading } = useService(name);
  const rates = useCpuRates(s?.running);
  if (isNotFound(error)) return <Missing name={name} />;
  if (loading && !s) return <Loading what="Loading the service…" />;
  if (!s) return <LoadError error={error} what={`load ${name}`} />;

  const live = s.deployments.find((d) => d.id === s.live_deployment);
  const latest = s.deployments[0];
  const memoryLimit = live?.spec?.memory;
  const events = Object.entries(s.events_24h).filter(([, n]) => n > 0);
  return (
    <section aria-label="Overview" class="overview">
      <LoadError error={error} what="refresh" />
      <dl class="facts card">
        <div>
          <dt>URL</dt>
          <dd>
            <a href={s.url} target="_blank" rel="noopener noreferrer" class="url">
              {s.url}
            </a>
          </dd>
        </div>
        <div>
          <dt>State</dt>
          <dd>
            <StateBadge state={serviceState(s)} />
          </dd>
        </div>
        <div>
          <dt>Live deployment</dt>
          <dd>
            {live ? (
              <>
                <a href={tabPath(name, "deployments", { deployment: live.id })}>
                  <code>{live.id}</code>
                </a>{" "}
                commit <code title={live.commit_sha ?? undefined}>{shortSha(live.commit_sha)}</code>
                {live.branch ? ` on ${live.branch}` : ""} · <Ago ms={live.finished_at ?? live.created_at} />
              </>
            ) : (
              <span class="muted">none</span>
            )}
          </dd>
        </div>
        {latest && latest.id !== s.live_deployment && (inProgress(latest.state) || latest.state === "failed") && (
          <div>
            <dt>Newest deployment</dt>
            <dd>
              <a href={tabPath(name, "deployments", { deployment: latest.id })}>
                <code>{latest.id}</code>
              </a>{" "}
              <StateBadge state={latest.state} />
              {latest.failure_reason ? ` ${latest.failure_reason.split("\n")[0]}` : ""}
            </dd>
          </div>
        )}
        <div>
          <dt>Cold starts</dt>
          <dd>{formatCount(s.cold_starts)}</dd>
        </div>
        <div>
          <dt>Requests 24 h</dt>
          <dd>
            {formatCount(s.requests_24h)} · {formatCount(s.errors_24h)} 5xx
          </dd>
        </div>
        <div>
          <dt>Scaling</dt>
          <dd>
            {s.scaling.min_instances}–{s.scaling.max_instances} instances · {s.scaling.concurrency} requests each · freeze
            after {formatDuration(s.scaling.idle_freeze_ms)}, stop after {formatDuration(s.scaling.idle_stop_ms)}
            {memoryLimit ? ` · ${memoryLimit} MB` : ""}
          </dd>
        </div>
        {events.length > 0 && (
          <div>
            <dt>Events 24 h</dt>
            <dd>
              <a href={tabPath(name, "metrics")}>{events.map(([k, n]) => `${n} ${k}`).join(", ")}</a>
            </dd>
          </div>
        )}
      </dl>

      <h2>Instances</h2>
      <p class="muted" role="status">
        {s.running.length} running{s.starting ? ` · ${s.starting} starting` : ""}
        {s.waiting ? ` · ${s.waiting} requests waiting` : ""}
      </p>
      {s.running.length === 0 ? (
        <p class="empty card">
          No instance runs now{s.live_deployment ? ": the next request starts one." : "."}
        </p>
      ) : (
        <div class="table-wrap">
          <table class="instances cards">
            <thead>
              <tr>
                <th scope="col">Instance</th>
                <th scope="col">State</th>
                <th scope="col">Deployment</th>
                <th scope="col" class="num">
                  Requests
                </th>
                <th scope="col" class="num">
                  In flight
                </th>
                <th scope="col" class="num">
                  Memory
                </th>
                <th scope="col" class="num">
                  CPU
                </th>
                <th scope="col" class="num">
                  Idle
                </th>
              </tr>
            </thead>
            <tbody>
              {s.running.map((i) => {
                const rate = rates.get(i.id);
                return (
                  <tr key={i.id}>
                    <th scope="row" data-label="Instance">
                      <code>{i.id}</code>
                    </th>
                    <td data-label="State">
                      <StateBadge state={i.state} />
                    </td>
                    <td data-label="Deployment">
                      <code>{i.deployment}</code>
                    </td>
                    <td data-label="Requests" class="num">
                      {formatCount(i.requests)}
                    </td>
                    <td data-label="In flight" class="num">
                      {i.in_flight}
                    </td>
                    <td data-label="Memory" class="num">
                      {i.memory_bytes == null ? "—" : formatBytes(i.memory_bytes)}
                      {memoryLimit ? <span class="muted"> / {memoryLimit} MB</span> : null}
                    </td>
                    <td data-label="CPU" class="num" title="Share of one core since the last refresh; CPU time in total">
                      {i.cpu_ms == null ? "—" : <>{rate == null ? "…" : `${(rate * 100).toFixed(1)} %`}<span class="muted"> · {formatDuration(i.cpu_ms)}</span></>}
                    </td>
                    <td data-label="Idle" class="num">
                      {formatDuration(i.idle_ms)}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
