// /services/NAME/logs: the service's logs, live over SSE, with the CLI's filters. The filters
// live in the address (?stream=access&grep=GET), so a link shows the same lines when shared or
// reloaded. Pausing freezes the view while the stream keeps receiving: on resume the lines that
// came meanwhile show, none lost, none twice.
import type { JSX } from "preact";
import { useEffect, useMemo, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api } from "../../api/client";
import { FOLLOW_RATE, stateText, useLogStream, type LogFilters, type LogLine } from "../../api/sse";
import { LogLines } from "../../components/LogLines";
import { Missing } from "./Missing";
import type { TabProps } from "./tabs";
import "./observe.css";

const FIELDS = ["stream", "instance", "deployment", "since", "grep"] as const;
type Field = (typeof FIELDS)[number];
type Form = Record<Field, string>;

/** The stream choices: one stream, or the app's own output (stdout and stderr). */
const STREAM_OPTIONS: [string, string][] = [
  ["", "All streams"],
  ["stdout,stderr", "stdout + stderr"],
  ["stdout", "stdout"],
  ["stderr", "stderr"],
  ["access", "access"],
  ["build", "build"],
  ["system", "system"],
];

/** A duration as the server takes it: `30s`, `10m`, `2h`, `7d`, `1h30m`. */
const DURATION = /^(\d+(ms|s|m|h|d)\s*)+$/;

function formOf(query: Record<string, string>): Form {
  return {
    stream: query.stream ?? "",
    instance: query.instance ?? "",
    deployment: query.deployment ?? "",
    since: query.since ?? "",
    grep: query.grep ?? "",
  };
}

function problems(f: Form): Partial<Record<Field, string>> {
  const out: Partial<Record<Field, string>> = {};
  const since = f.since.trim();
  if (since && !DURATION.test(since)) out.since = "A duration with a unit, e.g. 10m, 2h or 7d.";
  const streams = f.stream.split(",").filter(Boolean);
  const known = ["stdout", "stderr", "access", "build", "system"];
  if (streams.some((s) => !known.includes(s))) out.stream = `One of ${known.join(", ")}.`;
  return out;
}

function queryOf(f: Form): string {
  const q = new URLSearchParams();
  for (const k of FIELDS) {
    const v = k === "grep" ? f[k] : f[k].trim();
    if (v) q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

function filtersOf(f: Form): LogFilters {
  const out: LogFilters = {};
  for (const k of FIELDS) {
    const v = k === "grep" ? f[k] : f[k].trim();
    if (v) out[k] = v;
  }
  return out;
}

/** How long typing waits before the filters apply (each change restarts the stream). */
const APPLY_MS = 500;

export function Logs({ name }: TabProps) {
  const { path, query, route } = useLocation();
  const applied = formOf(query);
  const appliedKey = queryOf(applied);
  const [form, setForm] = useState<Form>(applied);
  // The address changed by itself (back, forward, a link): the form follows it.
  useEffect(() => setForm(formOf(query)), [appliedKey]);

  const errors = problems(form);
  const formKey = queryOf(form);
  const apply = (f: Form) => {
    if (Object.keys(problems(f)).length === 0 && queryOf(f) !== appliedKey) route(path + queryOf(f), true);
  };
  useEffect(() => {
    const t = setTimeout(() => apply(form), APPLY_MS);
    return () => clearTimeout(t);
  }, [formKey]);

  const appliedOk = Object.keys(problems(applied)).length === 0;
  const filters = useMemo(() => (appliedOk ? filtersOf(applied) : null), [appliedKey]);
  const { lines, state, skipped } = useLogStream(name, filters);

  // Paused: the view keeps the lines it had; the stream goes on filling `lines`.
  const [frozen, setFrozen] = useState<LogLine[] | null>(null);
  useEffect(() => setFrozen(null), [appliedKey]);
  const paused = frozen !== null;
  const lastShown = frozen?.[frozen.length - 1]?.id ?? 0;
  const waiting = paused ? lines.filter((l) => l.id > lastShown).length : 0;

  // Ids of the instances and deployments, offered as suggestions.
  const [known, setKnown] = useState<{ instances: string[]; deployments: string[] }>({ instances: [], deployments: [] });
  const [missing, setMissing] = useState(false);
  useEffect(() => {
    setMissing(false);
    api.GET("/v1/services/{name}", { params: { path: { name } } }).then(({ data, response }) => {
      if (response.status === 404) setMissing(true);
      if (!data) return;
      const instances = [...new Set([...data.running.map((i) => i.id), ...data.instances.map((i) => i.id)])];
      setKnown({ instances, deployments: data.deployments.map((d) => d.id) });
    });
  }, [name]);

  const status = paused
    ? `Paused${waiting > 0 ? ` · ${waiting} new line${waiting === 1 ? "" : "s"}` : ""}`
    : appliedOk
      ? stateText(state)
      : "Stopped: the address's filters are not valid (see above)";
  const statusClass = paused ? "paused" : state.kind;

  const field = (k: Field, label: string, input: JSX.Element) => (
    <div class={`field f-${k}`}>
      <label for={`logs-${k}`}>{label}</label>
      {input}
      {errors[k] ? (
        <span id={`logs-${k}-error`} class="field-error">
          {errors[k]}
        </span>
      ) : null}
    </div>
  );
  const text = (k: Field, extra: Record<string, string> = {}) => (
    <input
      id={`logs-${k}`}
      name={k}
      type={k === "grep" ? "search" : "text"}
      value={form[k]}
      autocomplete="off"
      spellcheck={false}
      aria-invalid={errors[k] ? "true" : undefined}
      aria-describedby={errors[k] ? `logs-${k}-error` : undefined}
      onInput={(e) => setForm({ ...form, [k]: e.currentTarget.value })}
      {...extra}
    />
  );

  const cleared = FIELDS.every((k) => !form[k]);
  if (missing) return <Missing name={name} />;
  return (
    <section aria-label="Logs" class="logs-tab">
      <form
        class="filters"
        aria-label="Filters"
        onSubmit={(e) => {
          e.preventDefault();
          apply(form);
        }}
      >
        {field(
          "stream",
          "Stream",
          <select
            id="logs-stream"
            name="stream"
            value={form.stream}
            aria-invalid={errors.stream ? "true" : undefined}
            aria-describedby={errors.stream ? "logs-stream-error" : undefined}
            onChange={(e) => {
              const f = { ...form, stream: e.currentTarget.value };
              setForm(f);
              apply(f);
            }}
          >
            {STREAM_OPTIONS.some(([v]) => v === form.stream) ? null : <option value={form.stream}>{form.stream}</option>}
            {STREAM_OPTIONS.map(([v, t]) => (
              <option value={v}>{t}</option>
            ))}
          </select>,
        )}
        {field("instance", "Instance", text("instance", { list: "logs-instances", placeholder: "all" }))}
        {field("deployment", "Deployment", text("deployment", { list: "logs-deployments", placeholder: "all" }))}
        {field("since", "Since", text("since", { placeholder: "e.g. 10m, 2h, 7d", inputmode: "text" }))}
        {field("grep", "Grep", text("grep", { placeholder: "text in the line" }))}
        <datalist id="logs-instances">
          {known.instances.map((i) => (
            <option value={i} />
          ))}
        </datalist>
        <datalist id="logs-deployments">
          {known.deployments.map((d) => (
            <option value={d} />
          ))}
        </datalist>
        <div class="filter-actions">
          {/* Typing applies after a pause; Enter or Apply at once. */}
          <button type="submit">Apply</button>
          <button
            type="button"
            disabled={cleared}
            onClick={() => {
              const f = formOf({});
              setForm(f);
              apply(f);
            }}
          >
            Clear filters
          </button>
        </div>
      </form>
      <div class="log-controls">
        <p role="status" class={`stream-status s-${statusClass}`}>
          <span class="dot" aria-hidden="true" />
          {status}
        </p>
        <button type="button" onClick={() => setFrozen(paused ? null : lines)}>
          {paused ? "Resume" : "Pause"}
        </button>
      </div>
      {skipped > 0 ? (
        <p class="log-skipped muted">
          {skipped.toLocaleString()} new line{skipped === 1 ? "" : "s"} not shown: more than {FOLLOW_RATE} a second came. Every line is
          stored: narrow the filters (stream, grep) to follow fewer, or read them with <code>hoist logs {name}</code>.
        </p>
      ) : null}
      <LogLines
        lines={frozen ?? lines}
        label="Log lines"
        busy={state.kind === "connecting"}
        onJump={() => setFrozen(null)}
        empty={
          state.kind === "connecting"
            ? "Loading…"
            : cleared
              ? "No log lines yet. Lines appear here as the service writes them and answers requests."
              : "No line matches these filters yet."
        }
      />
    </section>
  );
}
