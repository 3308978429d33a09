// A log view that keeps up with a busy service: thousands of lines, a few hundred more a second.
// Preact renders the frame; the lines themselves are plain DOM nodes appended and dropped by hand
// (ids only grow, so a new batch is "the lines after the last one shown"), so a batch costs what
// it adds, not what the view holds.
import type { ComponentChildren } from "preact";
import { useLayoutEffect, useRef, useState } from "preact/hooks";
import type { LogLine } from "../api/sse";
import "./log-lines.css";

export interface LogLinesProps {
  /** The lines, oldest first, ids increasing (as the streams of sse.ts give them). */
  lines: LogLine[];
  /** The region's accessible name ("Log lines", "Build log"). */
  label: string;
  /** Shown while there is no line. */
  empty?: ComponentChildren;
  /** Whether lines are still loading (the region is `aria-busy`). */
  busy?: boolean;
  /** Whether to show each line's instance (a build log has none). */
  showInstance?: boolean;
  /** Called by "Jump to newest" besides scrolling (e.g. to resume a paused view). */
  onJump?: () => void;
}

const pad = (n: number, w = 2) => String(n).padStart(w, "0");

/** A line's time: `HH:MM:SS.mmm` today, with the date before it on other days. */
function timeText(ts: number, today: string): string {
  const d = new Date(ts);
  const day = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  return day === today ? time : `${day} ${time}`;
}

function todayText(): string {
  const d = new Date();
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

function span(cls: string, text: string): HTMLSpanElement {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}

function lineElement(l: LogLine, today: string, showInstance: boolean): HTMLDivElement {
  const el = document.createElement("div");
  el.className = `log-line log-${l.stream}`;
  el.dataset.id = String(l.id);
  const time = document.createElement("time");
  time.className = "log-time";
  time.dateTime = new Date(l.ts).toISOString();
  time.textContent = timeText(l.ts, today);
  el.append(time, " ", span("log-stream", l.stream), " ");
  if (showInstance) el.append(span("log-instance", l.instance ?? "-"), " ");
  el.append(span("log-text", l.line));
  return el;
}

/** Lines per block of the view. Lines sit in blocks that each lay out on their own, and are
 * skipped while out of view (CSS `content-visibility`), so dropping the oldest line or adding a
 * new one re-lays-out one block, not the thousands of lines above it. */
const CHUNK = 200;

/** Removes the first `n` lines of the view, and the blocks they leave empty. */
function dropFront(box: HTMLElement, n: number) {
  while (n > 0) {
    const chunk = box.firstElementChild;
    if (!chunk) return;
    const count = chunk.childElementCount;
    if (count <= n) {
      chunk.remove();
      n -= count;
    } else {
      for (let i = 0; i < n; i++) chunk.firstElementChild?.remove();
      n = 0;
    }
  }
}

/** How close to the end (px) still counts as "at the newest line". */
const STICK_PX = 24;

export function LogLines({ lines, label, empty, busy, showInstance = true, onJump }: LogLinesProps) {
  const box = useRef<HTMLDivElement>(null);
  /** Ids of the lines in the box, in order. */
  const shown = useRef<number[]>([]);
  /** Whether the view follows the newest line (it was at the bottom before this batch). */
  const stick = useRef(true);
  const [unseen, setUnseen] = useState(0);

  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    const ids = shown.current;
    const first = lines[0]?.id;
    // Drop what fell off the front of the kept lines.
    let drop = 0;
    while (drop < ids.length && first !== undefined && (ids[drop] ?? 0) < first) drop++;
    if (first === undefined) drop = ids.length;
    dropFront(el, drop);
    ids.splice(0, drop);
    // Not a continuation of what is shown (another stream, other filters): start over.
    if (ids.length > 0 && (ids.length > lines.length || lines[ids.length - 1]?.id !== ids[ids.length - 1])) {
      el.replaceChildren();
      ids.length = 0;
    }
    const add = lines.slice(ids.length);
    if (add.length > 0) {
      const today = todayText();
      let chunk = el.lastElementChild as HTMLDivElement | null;
      for (const l of add) {
        if (!chunk || chunk.childElementCount >= CHUNK) {
          chunk = document.createElement("div");
          chunk.className = "log-chunk";
          el.append(chunk);
        }
        chunk.append(lineElement(l, today, showInstance));
        ids.push(l.id);
      }
    }
    if (stick.current) {
      el.scrollTop = el.scrollHeight;
      setUnseen(0);
    } else if (add.length > 0) {
      setUnseen((n) => n + add.length);
    }
  }, [lines, showInstance]);

  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight <= STICK_PX;
    if (stick.current) setUnseen(0);
  };

  const jump = () => {
    const el = box.current;
    stick.current = true;
    setUnseen(0);
    if (el) el.scrollTop = el.scrollHeight;
    onJump?.();
  };

  return (
    <div class="log-view">
      {/* Filled by the effect above, never by Preact: it has no children of its own. */}
      <div
        ref={box}
        class={showInstance ? "log-lines" : "log-lines no-instance"}
        role="region"
        aria-label={label}
        aria-busy={busy ? "true" : undefined}
        tabIndex={0}
        onScroll={onScroll}
      />
      {lines.length === 0 && empty ? <p class="log-empty">{empty}</p> : null}
      <div class="log-foot">
        <span class="muted">
          {lines.length} line{lines.length === 1 ? "" : "s"}
          {unseen > 0 ? ` · ${unseen} new below` : ""}
        </span>
        <button type="button" class={unseen > 0 ? "primary" : undefined} onClick={jump}>
          Jump to newest
        </button>
      </div>
    </div>
  );
}
