// The server's live streams (a deployment's events, a service's logs) as typed Server-Sent
// Events. EventSource does the hard part: on a lost connection it reconnects by itself and sends
// the last id it saw (`Last-Event-ID`), and the server sends only what followed it. This wrapper
// adds what the page needs on top: each event's JSON checked into the API's types, a connection
// state to show, a de-duplication by id (a fresh connection after the browser gave up replays the
// backlog), batching (a busy service sends hundreds of lines a second: the page renders them a
// few times a second), and a clean stop at a deployment's outcome.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, errorText, type Schemas } from "./client";
import type { paths } from "./schema";

export type LogLine = Schemas["LogLine"];
export type StreamEvent = Schemas["StreamEvent"];
export type DeploymentOutcome = Schemas["DeploymentOutcome"];
export type LogStream = Schemas["LogStream"];

/** The filters of `GET /v1/services/{name}/logs`, as the API names them. */
export type LogQuery = NonNullable<paths["/v1/services/{name}/logs"]["get"]["parameters"]["query"]>;
/** The filters a person sets (follow and format are the stream's own). */
export type LogFilters = Pick<LogQuery, "stream" | "instance" | "deployment" | "since" | "grep" | "build" | "tail">;

/** Where a stream's connection is, for a visible status. */
export type StreamState =
  | { kind: "connecting" }
  | { kind: "open" }
  /** Lost, and being retried (the count of tries since it was last open). */
  | { kind: "reconnecting"; retries: number }
  /** Over: `ended` at the stream's last event, `stopped` by the page, `failed` when the server
   * refused it (the API's error text). */
  | { kind: "closed"; why: "ended" | "stopped" | "failed"; error?: string };

/** The most log lines a view keeps: older ones are dropped as new ones come. */
export const KEEP_LINES = 5000;

const STREAMS: readonly LogStream[] = ["stdout", "stderr", "build", "system", "access"];

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null;
const optString = (v: unknown) => v === undefined || v === null || typeof v === "string";

/** The event's JSON as a `LogLine`, or null when it is not one. */
export function asLogLine(v: unknown): LogLine | null {
  if (!isObject(v)) return null;
  const ok =
    typeof v.id === "number" &&
    typeof v.ts === "number" &&
    typeof v.line === "string" &&
    typeof v.service === "string" &&
    STREAMS.includes(v.stream as LogStream) &&
    optString(v.instance) &&
    optString(v.deployment);
  return ok ? (v as LogLine) : null;
}

/** The event's JSON as a `StreamEvent` (a log line or the deployment's outcome), or null. */
export function asStreamEvent(v: unknown): StreamEvent | null {
  if (!isObject(v)) return null;
  if (v.type === "log") return asLogLine(v) ? (v as StreamEvent) : null;
  if (v.type === "deployment") {
    const ok = typeof v.id === "string" && typeof v.service === "string" && typeof v.state === "string";
    return ok ? (v as StreamEvent) : null;
  }
  return null;
}

export interface EventStreamOptions<T> {
  url: string;
  /** The event's parsed JSON as T, or null when it is not one (it is then skipped). */
  parse: (json: unknown) => T | null;
  onEvent: (event: T, id: string) => void;
  /** Handlers of named events (`event: NAME`), given the event's parsed JSON. */
  named?: Record<string, (json: unknown, id: string) => void>;
  onState?: (state: StreamState) => void;
  /** Whether this event is the stream's last: the stream then closes instead of reconnecting. */
  isEnd?: (event: T, id: string) => boolean;
  /** Asked when the browser gives up on the stream (the server answered an error, which
   * EventSource does not show): the API's error text, or null to try again. */
  diagnose?: () => Promise<string | null>;
}

/** How long an ended stream's connection is left for the server to close. */
const LINGER_MS = 15_000;

/** The waits before reconnecting after the browser gave up, in ms (the last one repeats). */
const BACKOFF = [1000, 2000, 5000, 10000];

/** One SSE stream: open from construction until `close()` or its last event. */
export class EventStream<T> {
  private source: EventSource | null = null;
  private lastId = "";
  private retries = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private done = false;
  state: StreamState = { kind: "connecting" };

  constructor(private readonly opts: EventStreamOptions<T>) {
    this.connect();
  }

  /** The id of the last event handed on. */
  get lastEventId(): string {
    return this.lastId;
  }

  close() {
    this.finish({ kind: "closed", why: "stopped" });
  }

  private set(state: StreamState) {
    this.state = state;
    this.opts.onState?.(state);
  }

  private finish(state: StreamState) {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
    this.set(state);
  }

  /** The stream's last event came: nothing more is handed on. The server ends the response
   * right after it; closing the connection from here first would show in the browser as an
   * aborted request, and letting the browser reconnect would fetch a `204` (which Chromium
   * also reports as aborted). So the connection is closed the moment the server ended it,
   * before any reconnect, or after a while if it never does. */
  private ended() {
    const source = this.source;
    this.source = null;
    this.finish({ kind: "closed", why: "ended" });
    if (!source) return;
    source.onmessage = null;
    source.onopen = null;
    const stop = setTimeout(() => source.close(), LINGER_MS);
    source.onerror = () => {
      clearTimeout(stop);
      source.close();
    };
  }

  /** Whether an event with this id was handed on already. Ids are increasing numbers (a log
   * line's id) or `end`; a replay after a fresh connection repeats ids up to the last one. */
  private seen(id: string): boolean {
    if (id === "" || this.lastId === "") return false;
    if (id === this.lastId) return true;
    const [n, last] = [Number(id), Number(this.lastId)];
    return Number.isFinite(n) && Number.isFinite(last) && n <= last;
  }

  private connect() {
    if (this.done) return;
    const source = new EventSource(this.opts.url);
    this.source = source;
    this.set(this.retries > 0 ? { kind: "reconnecting", retries: this.retries } : { kind: "connecting" });
    source.onopen = () => {
      this.retries = 0;
      this.set({ kind: "open" });
    };
    source.onmessage = (m: MessageEvent<string>) => {
      const id = m.lastEventId;
      if (this.done || this.seen(id)) return;
      let event: T | null = null;
      try {
        event = this.opts.parse(JSON.parse(m.data));
      } catch {
        event = null;
      }
      if (id !== "") this.lastId = id;
      if (event === null) return;
      this.opts.onEvent(event, id);
      if (this.opts.isEnd?.(event, id)) this.ended();
    };
    for (const [name, handle] of Object.entries(this.opts.named ?? {})) {
      source.addEventListener(name, (m: MessageEvent<string>) => {
        const id = m.lastEventId;
        if (this.done || this.seen(id)) return;
        if (id !== "") this.lastId = id;
        let json: unknown;
        try {
          json = JSON.parse(m.data);
        } catch {
          return;
        }
        handle(json, id);
      });
    }
    source.onerror = () => {
      if (this.done || this.source !== source) return;
      this.retries += 1;
      if (source.readyState !== EventSource.CLOSED) {
        // The browser reconnects by itself, with Last-Event-ID.
        this.set({ kind: "reconnecting", retries: this.retries });
        return;
      }
      // The browser gave up: an HTTP error (a refused filter, a lost session, a server that
      // is restarting behind a proxy). Ask why; retry unless the server says no.
      source.close();
      this.source = null;
      this.set({ kind: "reconnecting", retries: this.retries });
      const diagnose = this.opts.diagnose ?? (async () => null);
      diagnose().then(
        (error) => this.retryOrFail(error),
        () => this.retryOrFail(null),
      );
    };
  }

  private retryOrFail(error: string | null) {
    if (this.done) return;
    if (error !== null) {
      this.finish({ kind: "closed", why: "failed", error });
      return;
    }
    const wait = BACKOFF[Math.min(this.retries, BACKOFF.length) - 1] ?? 10000;
    this.timer = setTimeout(() => this.connect(), wait);
  }
}

/** The address of a service's log stream with these filters (empty ones left out). */
export function logStreamUrl(name: string, filters: LogFilters): string {
  const q = new URLSearchParams({ follow: "true", format: "sse", max_rate: String(FOLLOW_RATE) });
  for (const [k, v] of Object.entries(filters)) {
    if (v !== undefined && v !== null && v !== "" && v !== false) q.set(k, String(v));
  }
  return `/v1/services/${encodeURIComponent(name)}/logs?${q}`;
}

/** The address of a deployment's event stream. */
export function deploymentEventsUrl(id: string): string {
  return `/v1/deployments/${encodeURIComponent(id)}/events?format=sse`;
}

/** Whether an answer says the stream will never be served as asked (a 4xx: bad filters, no
 * such service, no session). A 5xx (a proxy in front of a restarting server) is worth a retry. */
function refused(r: Response): boolean {
  return r.status >= 400 && r.status < 500;
}

/** The least time between two redraws of a stream's lines, in ms. A quiet service's line shows
 * at the next frame; a busy one's are redrawn once a second at most, since each redraw (style,
 * layout, paint and, without a GPU, raster of the whole view) costs about what a hundred
 * lines' parsing does, on a machine whose cores the server may share. */
export const REDRAW_MS = 1000;

/** How long a batch that just got its first line waits before it is drawn, given when the
 * last redraw was (ms, -Infinity for never) and now: at once (a task away, so that lines
 * arriving together are one redraw) after a quiet spell, else until REDRAW_MS have passed. */
export function redrawWait(last: number, now: number): number {
  return Math.max(0, last + REDRAW_MS - now);
}

/** Lines that arrive one by one, handed to the page in batches and capped at `cap`, with the
 * count of the lines the server left out (`skipped`) updated in the same redraw. */
function useLineBuffer(cap: number) {
  const [view, setView] = useState<{ lines: LogLine[]; skipped: number }>({ lines: [], skipped: 0 });
  const pending = useRef<LogLine[]>([]);
  const pendingSkipped = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  /** When the last redraw was asked for (performance.now()), or -Infinity. */
  const last = useRef(Number.NEGATIVE_INFINITY);
  const flush = () => {
    clearTimeout(timer.current);
    timer.current = undefined;
    const add = pending.current;
    const skipped = pendingSkipped.current;
    pending.current = [];
    pendingSkipped.current = 0;
    if (add.length === 0 && skipped === 0) return;
    last.current = performance.now();
    setView((old) => {
      const all = add.length === 0 ? old.lines : old.lines.length === 0 ? add : old.lines.concat(add);
      return { lines: all.length > cap ? all.slice(all.length - cap) : all, skipped: old.skipped + skipped };
    });
  };
  const schedule = () => {
    if (timer.current !== undefined) return;
    timer.current = setTimeout(flush, redrawWait(last.current, performance.now()));
  };
  const push = (l: LogLine) => {
    pending.current.push(l);
    if (pending.current.length > cap) pending.current.splice(0, pending.current.length - cap);
    schedule();
  };
  const skip = (n: number) => {
    if (n <= 0) return;
    pendingSkipped.current += n;
    schedule();
  };
  const reset = () => {
    clearTimeout(timer.current);
    timer.current = undefined;
    pending.current = [];
    pendingSkipped.current = 0;
    last.current = Number.NEGATIVE_INFINITY;
    setView({ lines: [], skipped: 0 });
  };
  useEffect(() => () => clearTimeout(timer.current), []);
  return { lines: view.lines, skipped: view.skipped, push, skip, reset, flush };
}

export interface LogStreamView {
  /** The kept lines, oldest first (at most `cap`). */
  lines: LogLine[];
  state: StreamState;
  /** New lines the server did not send because they came faster than `FOLLOW_RATE` a second
   * (each is stored: the same filters without following show them). */
  skipped: number;
}

/** The most new lines a second a followed view is sent (the API's `max_rate`): more than a
 * person can read, and few enough that a service answering thousands of requests a second
 * costs the browser, and the server's cores it shares with the gateway, next to nothing. */
export const FOLLOW_RATE = 100;

/** The count of a `skipped` event (`LogsSkipped`), or 0 when it is not one. */
export function skippedCount(v: unknown): number {
  return isObject(v) && typeof v.skipped === "number" && v.skipped > 0 ? v.skipped : 0;
}

/**
 * A service's logs, followed live: the backlog, then new lines as they are stored. A new `url`
 * (other filters) starts over; `null` follows nothing. Closed on unmount.
 */
export function useLogStream(name: string, filters: LogFilters | null, cap = KEEP_LINES): LogStreamView {
  const buf = useLineBuffer(cap);
  const [state, setState] = useState<StreamState>({ kind: "connecting" });
  const url = filters ? logStreamUrl(name, filters) : null;
  useEffect(() => {
    buf.reset();
    if (!url || !filters) {
      setState({ kind: "closed", why: "stopped" });
      return;
    }
    const stream = new EventStream<LogLine>({
      url,
      parse: asLogLine,
      onEvent: buf.push,
      named: { skipped: (json) => buf.skip(skippedCount(json)) },
      onState: setState,
      // The same request without follow answers the API's error (e.g. a bad `since`) as JSON.
      diagnose: async () => {
        const { error, response } = await api.GET("/v1/services/{name}/logs", {
          params: { path: { name }, query: { ...filters, tail: 0 } },
          parseAs: "text",
        });
        return refused(response) ? errorText(error) : null;
      },
    });
    return () => stream.close();
  }, [url]);
  return { lines: buf.lines, state, skipped: buf.skipped };
}

export interface DeploymentEventsView {
  /** The deployment's build and start lines, oldest first. */
  lines: LogLine[];
  state: StreamState;
  /** Its outcome, once the stream sent it (the stream is then over). */
  outcome: DeploymentOutcome | null;
}

/**
 * One deployment's build and start, live until its outcome (then the stream closes and does not
 * reconnect). `null` follows nothing. Closed on unmount.
 */
export function useDeploymentEvents(id: string | null, cap = KEEP_LINES): DeploymentEventsView {
  const buf = useLineBuffer(cap);
  const [state, setState] = useState<StreamState>({ kind: "connecting" });
  const [outcome, setOutcome] = useState<DeploymentOutcome | null>(null);
  useEffect(() => {
    buf.reset();
    setOutcome(null);
    if (!id) {
      setState({ kind: "closed", why: "stopped" });
      return;
    }
    const stream = new EventStream<StreamEvent>({
      url: deploymentEventsUrl(id),
      parse: asStreamEvent,
      onEvent: (e) => {
        if (e.type === "log") {
          const { type: _, ...line } = e;
          buf.push(line);
        } else {
          // The lines before the outcome show with it, not a moment after.
          buf.flush();
          const { type: _, ...o } = e;
          setOutcome(o);
        }
      },
      onState: setState,
      isEnd: (e) => e.type === "deployment",
      diagnose: async () => {
        const { error, response } = await api.GET("/v1/deployments/{id}", { params: { path: { id } } });
        return refused(response) ? errorText(error) : null;
      },
    });
    return () => stream.close();
  }, [id]);
  return { lines: buf.lines, state, outcome };
}

/** A stream's state in words, for a `role="status"`. */
export function stateText(s: StreamState): string {
  switch (s.kind) {
    case "connecting":
      return "Connecting…";
    case "open":
      return "Following";
    case "reconnecting":
      return s.retries > 1 ? `Reconnecting… (try ${s.retries})` : "Reconnecting…";
    case "closed":
      return s.why === "failed" ? `Stopped: ${s.error ?? "the server refused the stream"}` : s.why === "ended" ? "Ended" : "Stopped";
  }
}
