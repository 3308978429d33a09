// A state as a word with a colour: the word is the text (a test and a screen reader read it),
// the colour only repeats it.
const tone: Record<string, string> = {
  live: "ok", ready: "ok", running: "ok", done: "ok",
  queued: "busy", fetching: "busy", building: "busy", starting: "busy", stopping: "busy",
  frozen: "cold", idle: "cold", superseded: "muted", cancelled: "muted", stopped: "muted",
  "not deployed": "muted", failed: "bad",
};

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge ${tone[state] ?? "muted"}`}>{state}</span>;
}

/** A deployment still on its way (its log is streaming). */
export function inProgress(state: string): boolean {
  return ["queued", "fetching", "building", "starting"].includes(state);
}
