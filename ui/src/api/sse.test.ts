/// <reference types="node" />
// EventStream against a stand-in for the browser's EventSource (the one boundary faked here):
// `npx tsx --test src/api/sse.test.ts`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { asLogLine, EventStream, logStreamUrl, redrawWait, REDRAW_MS, skippedCount, type LogLine, type StreamState } from "./sse";

/** Plays the browser's part: what it would deliver, when. */
class FakeSource {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSED = 2;
  static made: FakeSource[] = [];
  readyState = FakeSource.CONNECTING;
  onopen: (() => void) | null = null;
  onmessage: ((m: { data: string; lastEventId: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  named = new Map<string, (m: { data: string; lastEventId: string }) => void>();
  constructor(readonly url: string) {
    FakeSource.made.push(this);
  }
  open() {
    this.readyState = FakeSource.OPEN;
    this.onopen?.();
  }
  send(id: string, data: unknown) {
    this.onmessage?.({ data: JSON.stringify(data), lastEventId: id });
  }
  addEventListener(name: string, f: (m: { data: string; lastEventId: string }) => void) {
    this.named.set(name, f);
  }
  /** An event with a name (`event: NAME`), which `onmessage` does not get. */
  sendNamed(name: string, id: string, data: unknown) {
    this.named.get(name)?.({ data: JSON.stringify(data), lastEventId: id });
  }
  /** The connection dropped; the browser will reconnect by itself (with Last-Event-ID). */
  drop() {
    this.readyState = FakeSource.CONNECTING;
    this.onerror?.();
  }
  /** The browser gave up (an HTTP error status). */
  fail() {
    this.readyState = FakeSource.CLOSED;
    this.onerror?.();
  }
  close() {
    this.closed = true;
    this.readyState = FakeSource.CLOSED;
  }
}
(globalThis as unknown as { EventSource: unknown }).EventSource = FakeSource;

const line = (id: number, text = `line ${id}`): LogLine => ({ id, service: "s", stream: "stdout", ts: 1, line: text });

function follow(opts: { diagnose?: () => Promise<string | null>; named?: Record<string, (json: unknown, id: string) => void> } = {}) {
  FakeSource.made = [];
  const got: number[] = [];
  const states: StreamState[] = [];
  const stream = new EventStream<LogLine>({
    url: "/v1/services/s/logs?follow=true&format=sse",
    parse: asLogLine,
    onEvent: (l) => got.push(l.id),
    onState: (s) => states.push(s),
    ...opts,
  });
  return { stream, got, states, source: () => FakeSource.made[FakeSource.made.length - 1] as FakeSource };
}

test("lines are handed on once each, in order, even when a fresh connection replays them", async () => {
  const { stream, got, states, source } = follow({ diagnose: async () => null });
  source().open();
  source().send("1", line(1));
  source().send("2", line(2));
  // The browser reconnects by itself: the state says so, then open again.
  source().drop();
  assert.deepEqual(states.at(-1), { kind: "reconnecting", retries: 1 });
  source().open();
  source().send("3", line(3));
  // The browser gave up; the stream starts a new connection, whose backlog repeats lines.
  source().fail();
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(FakeSource.made.length, 2, "a new connection after the browser gave up");
  source().open();
  for (const id of [1, 2, 3, 4]) source().send(String(id), line(id));
  assert.deepEqual(got, [1, 2, 3, 4]);
  assert.equal(stream.lastEventId, "4");
  stream.close();
  assert.ok(source().closed);
  assert.deepEqual(states.at(-1), { kind: "closed", why: "stopped" });
});

test("a refused stream (the API's 4xx) stops with the API's error instead of retrying", async () => {
  const { states, source } = follow({ diagnose: async () => "invalid since 'abc'" });
  source().fail();
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(states.at(-1), { kind: "closed", why: "failed", error: "invalid since 'abc'" });
  await new Promise((r) => setTimeout(r, 1100));
  assert.equal(FakeSource.made.length, 1, "no new connection after a refusal");
});

test("an event that is not a log line is skipped, the stream goes on", () => {
  const { got, source, stream } = follow();
  source().open();
  source().send("1", { id: 1, nonsense: true });
  source().onmessage?.({ data: "not json", lastEventId: "2" });
  source().send("3", line(3));
  assert.deepEqual(got, [3]);
  stream.close();
});

test("a deployment's end: handed on, then the connection closes when the server ends it", () => {
  FakeSource.made = [];
  const got: string[] = [];
  const states: StreamState[] = [];
  new EventStream<{ type: string }>({
    url: "/v1/deployments/d-1/events?format=sse",
    parse: (v) => v as { type: string },
    onEvent: (e, id) => got.push(`${e.type}:${id}`),
    onState: (s) => states.push(s),
    isEnd: (e) => e.type === "deployment",
  });
  const source = FakeSource.made[0] as FakeSource;
  source.open();
  source.send("7", { type: "log" });
  source.send("end", { type: "deployment" });
  assert.deepEqual(got, ["log:7", "deployment:end"]);
  assert.deepEqual(states.at(-1), { kind: "closed", why: "ended" });
  // Not closed from here while the server finishes the response...
  assert.equal(source.closed, false);
  // ...but as soon as it ended it, before the browser would reconnect.
  source.drop();
  assert.equal(source.closed, true);
  assert.equal(FakeSource.made.length, 1);
});

test("the log stream's address carries only the filters given", () => {
  assert.equal(
    logStreamUrl("my app", { stream: "access", grep: "GET /x", since: "", instance: undefined }),
    "/v1/services/my%20app/logs?follow=true&format=sse&max_rate=100&stream=access&grep=GET+%2Fx",
  );
});

test("a `skipped` event is counted once and moves the resume point past the lines it stands for", () => {
  let skipped = 0;
  const { stream, got, source } = follow({ named: { skipped: (json) => (skipped += skippedCount(json)) } });
  source().open();
  source().send("1", line(1));
  source().sendNamed("skipped", "40", { skipped: 39, through_id: 40 });
  assert.equal(stream.lastEventId, "40", "a reconnect asks for the lines after the skipped ones");
  source().send("41", line(41));
  // A fresh connection replays from the server's backlog: the count is not taken again.
  source().sendNamed("skipped", "40", { skipped: 39, through_id: 40 });
  source().send("42", line(42));
  assert.deepEqual(got, [1, 41, 42]);
  assert.equal(skipped, 39);
  assert.equal(skippedCount({ skipped: "3" }), 0, "not a LogsSkipped");
});

test("a quiet stream's line is drawn at once, a busy stream's at most once per REDRAW_MS", () => {
  assert.equal(redrawWait(Number.NEGATIVE_INFINITY, 5), 0, "the first line of a view");
  assert.equal(redrawWait(1000, 1000 + REDRAW_MS + 1), 0, "after a quiet spell");
  assert.equal(redrawWait(1000, 1100), REDRAW_MS - 100, "100 ms after a redraw");
  assert.ok(redrawWait(1000, 1000) <= REDRAW_MS);
});
