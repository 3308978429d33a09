// /services/NAME/metrics: the service's per-minute series over 1, 6 or 24 hours (the range is in
// the address, ?since=6h), its usage per day, and its recent events with the log lines around
// them. Refreshed every minute, the resolution of the data.
import { useMemo } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, errorText, must, type Schemas } from "../../api/client";
import { usePoll } from "../../components/usePoll";
import { Missing } from "./Missing";
import { isNotFound } from "./useService";
import { Chart, type ChartProps } from "./Chart";
import type { TabProps } from "./tabs";
import "./observe.css";

type MinuteMetrics = Schemas["MinuteMetrics"];
type UsageDay = Schemas["UsageDay"];
type EventRecord = Schemas["EventRecord"];
type EventKind = Schemas["EventKind"];

const RANGES = [
  { since: "1h", label: "1 h", minutes: 60 },
  { since: "6h", label: "6 h", minutes: 360 },
  { since: "24h", label: "24 h", minutes: 1440 },
] as const;
type Range = (typeof RANGES)[number];

const REFRESH_MS = 60_000;
const MINUTE = 60_000;

const KIND_TEXT: Record<EventKind, string> = {
  http_5xx: "5xx answers",
  crash: "Crash",
  oom: "Out of memory",
  start_failed: "Failed start",
  cron_failed: "Failed cron run",
};

interface Data {
  metrics: MinuteMetrics[];
  usage: UsageDay[];
  events: EventRecord[];
  at: number;
}

/** Every minute of the range, those without a row at zero (a row is kept only for a minute
 * with traffic or instances); latency has no value in a minute without requests. */
function series(rows: MinuteMetrics[], range: Range, now: number) {
  const byMinute = new Map(rows.map((r) => [r.minute, r]));
  // The minute under way is written when it ends: until then the series stops at the one
  // before, rather than drop to zero at its end.
  const current = Math.floor(now / MINUTE) * MINUTE;
  const end = byMinute.has(current) ? current : current - MINUTE;
  const start = end - (range.minutes - 1) * MINUTE;
  const cols = {
    t: [] as number[],
    requests: [] as number[],
    errors: [] as number[],
    p50: [] as (number | null)[],
    p95: [] as (number | null)[],
    p99: [] as (number | null)[],
    instances: [] as number[],
    memory: [] as number[],
    cpu: [] as number[],
  };
  for (let m = start; m <= end; m += MINUTE) {
    const r = byMinute.get(m);
    cols.t.push(m / 1000);
    cols.requests.push(r?.requests ?? 0);
    cols.errors.push(r?.errors ?? 0);
    cols.p50.push(r?.p50_ms ?? null);
    cols.p95.push(r?.p95_ms ?? null);
    cols.p99.push(r?.p99_ms ?? null);
    cols.instances.push(r?.instances ?? 0);
    cols.memory.push(r?.memory_mb ?? 0);
    // CPU time over the minute, as a share of one core.
    cols.cpu.push(r ? (r.cpu_ms / MINUTE) * 100 : 0);
  }
  return cols;
}

const int = (v: number) => String(Math.round(v));
const num = (v: number) => (v >= 100 ? String(Math.round(v)) : String(Math.round(v * 10) / 10));

/** GB-seconds to three significant digits: a small service uses a fraction of one a day. */
const gbs = (v: number) => (v === 0 ? "0" : v >= 100 ? v.toFixed(0) : v.toPrecision(3));

function duration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60 ? `${s % 60} s` : ""}`.trim();
  const h = Math.floor(m / 60);
  return `${h} h ${m % 60 ? `${m % 60} min` : ""}`.trim();
}

function timeText(ts: number): string {
  return new Date(ts).toLocaleString(undefined, {
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export function Metrics({ name }: TabProps) {
  const { path, query, route } = useLocation();
  const range = RANGES.find((r) => r.since === query.since) ?? RANGES[0];
  // Refreshed every minute (the data's resolution) while the tab is visible; a failed load
  // keeps what was shown and retries with back-off (usePoll).
  const polled = usePoll(
    async (): Promise<Data> => {
      const p = { path: { name } };
      const [metrics, usage, events] = await Promise.all([
        must(api.GET("/v1/services/{name}/metrics", { params: { ...p, query: { since: range.since } } })),
        must(api.GET("/v1/services/{name}/usage", { params: { ...p, query: { days: 30 } } })),
        must(api.GET("/v1/services/{name}/events", { params: { ...p, query: { limit: 50 } } })),
      ]);
      return { metrics, usage, events, at: Date.now() };
    },
    REFRESH_MS,
    [name, range.since],
  );
  const data = polled.data ?? null;
  const loading = polled.loading;
  const error = polled.error === undefined ? null : errorText(polled.error);
  if (isNotFound(polled.error)) return <Missing name={name} />;

  const cols = useMemo(() => (data ? series(data.metrics, range, data.at) : null), [data, range]);
  const charts: (Omit<ChartProps, "data" | "empty"> & { data: ChartProps["data"] | null; has: boolean })[] = cols
    ? [
        { title: "Requests", unit: "requests per minute", integer: true, format: int, series: [{ label: "requests", color: "#2f5bea", fill: true }], data: [cols.t, cols.requests], has: cols.requests.some((v) => v > 0) },
        { title: "5xx", unit: "5xx answers per minute", integer: true, format: int, series: [{ label: "5xx", color: "#c62b2b", fill: true }], data: [cols.t, cols.errors], has: cols.requests.some((v) => v > 0) },
        {
          title: "Latency",
          unit: "ms",
          format: num,
          series: [
            { label: "p50", color: "#1f8a4c" },
            { label: "p95", color: "#b26b00" },
            { label: "p99", color: "#c62b2b" },
          ],
          points: true,
          data: [cols.t, cols.p50, cols.p95, cols.p99],
          has: cols.p50.some((v) => v !== null),
        },
        { title: "Instances", unit: "running at the end of each minute", integer: true, format: int, series: [{ label: "instances", color: "#7a4fd6", fill: true }], data: [cols.t, cols.instances], has: cols.instances.some((v) => v > 0) },
        { title: "Memory", unit: "MB", format: num, series: [{ label: "memory", color: "#0f8b8d", fill: true }], data: [cols.t, cols.memory], has: cols.memory.some((v) => v > 0) },
        { title: "CPU", unit: "% of one core", format: num, series: [{ label: "CPU", color: "#d6577a", fill: true }], data: [cols.t, cols.cpu], has: cols.cpu.some((v) => v > 0) },
      ]
    : [];
  const nothing = data !== null && data.metrics.length === 0;

  return (
    <section aria-label="Metrics" class="metrics-tab" aria-busy={loading && !data ? "true" : undefined}>
      <div class="metrics-head">
        <div class="range" role="group" aria-label="Range">
          {RANGES.map((r) => (
            <button
              type="button"
              aria-pressed={r === range}
              class={r === range ? "primary" : undefined}
              onClick={() => route(r === RANGES[0] ? path : `${path}?since=${r.since}`, true)}
            >
              {r.label}
            </button>
          ))}
        </div>
        <p class="hint">
          {loading ? <span class="spinner" aria-hidden="true" /> : null}
          {data ? `Updated ${new Date(data.at).toLocaleTimeString()} · refreshed every minute` : "Loading…"}
        </p>
      </div>
      {error ? (
        <p role="alert" class="banner error">
          Cannot read the metrics: {error}
        </p>
      ) : null}
      {nothing ? (
        <p class="empty">
          No metrics in the last {range.label} yet. They appear a minute after the service runs or answers a request.
        </p>
      ) : null}
      <div class="charts">
        {charts.length > 0
          ? charts.map((c) => <Chart key={c.title} {...c} data={c.data ?? [[]]} empty={!c.has} />)
          : ["Requests", "5xx", "Latency", "Instances", "Memory", "CPU"].map((t) => (
              <section class="chart card" key={t}>
                <h3>{t}</h3>
                <p class="loading" aria-busy="true">
                  Loading…
                </p>
              </section>
            ))}
      </div>
      <Usage days={data?.usage ?? null} />
      <Events events={data?.events ?? null} />
    </section>
  );
}

function Usage({ days }: { days: UsageDay[] | null }) {
  return (
    <section class="card usage" aria-labelledby="usage-h">
      <h2 id="usage-h">Usage</h2>
      <p class="hint" id="usage-note">
        Per UTC day, the last 30 days. GB-seconds: memory times the time instances ran (frozen time is free).
      </p>
      {days === null ? (
        <p class="loading" aria-busy="true">
          Loading…
        </p>
      ) : days.length === 0 ? (
        <p class="empty">No usage yet: it is counted while instances run.</p>
      ) : (
        <div class="table-wrap">
          <table class="usage-table cards" aria-describedby="usage-note">
            <thead>
              <tr>
                <th scope="col">Day</th>
                <th scope="col">Requests</th>
                <th scope="col">GB-seconds</th>
                <th scope="col">CPU</th>
                <th scope="col">Active</th>
                <th scope="col">Frozen</th>
                <th scope="col">Cold starts</th>
              </tr>
            </thead>
            <tbody>
              {[...days].reverse().map((d) => (
                <tr key={d.day}>
                  <th scope="row">{d.day}</th>
                  <td data-label="Requests">{d.requests}</td>
                  <td data-label="GB-seconds">{gbs(d.gb_seconds)}</td>
                  <td data-label="CPU">{duration(d.cpu_ms)}</td>
                  <td data-label="Active">{duration(d.active_ms)}</td>
                  <td data-label="Frozen">{duration(d.frozen_ms)}</td>
                  <td data-label="Cold starts">{d.cold_starts}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function Events({ events }: { events: EventRecord[] | null }) {
  return (
    <section class="card events" aria-labelledby="events-h">
      <h2 id="events-h">Events</h2>
      {events === null ? (
        <p class="loading" aria-busy="true">
          Loading…
        </p>
      ) : events.length === 0 ? (
        <p class="empty">No events: no 5xx answer, crash, out-of-memory kill or failed start so far.</p>
      ) : (
        <ul class="event-list" aria-label="Events">
          {events.map((e) => (
            <li key={e.id} class={`event k-${e.kind}`}>
              <div class="event-head">
                <span class={`badge ${e.kind === "http_5xx" ? "muted" : "bad"}`}>{KIND_TEXT[e.kind] ?? e.kind}</span>
                <time dateTime={new Date(e.ts).toISOString()}>{timeText(e.ts)}</time>
                {e.instance ? <code>{e.instance}</code> : null}
                {e.deployment ? <code>{e.deployment}</code> : null}
              </div>
              <p class="event-detail">{e.detail}</p>
              {e.context.length > 0 ? (
                <details>
                  <summary>
                    {e.context.length} log line{e.context.length === 1 ? "" : "s"} around it
                  </summary>
                  <pre class="event-context">{e.context.join("\n")}</pre>
                </details>
              ) : null}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
