// Instants shown as ages ("4.2s ago"), kept current by one shared clock.
import { useEffect, useState } from "preact/hooks";
import { formatDuration } from "./format";

const subscribers = new Set<(now: number) => void>();
let clock: ReturnType<typeof setInterval> | undefined;

/** The time now, re-rendering the caller every 5 s (one timer for the whole page). Read afresh
 * at every render: a render for new data (a row that just appeared) must not show the time its
 * component was mounted at, which is up to 5 s old. */
export function useNow(): number {
  const [, setNow] = useState(Date.now());
  useEffect(() => {
    subscribers.add(setNow);
    clock ??= setInterval(() => {
      const t = Date.now();
      for (const f of subscribers) f(t);
    }, 5000);
    return () => {
      subscribers.delete(setNow);
      if (subscribers.size === 0) {
        clearInterval(clock);
        clock = undefined;
      }
    };
  }, []);
  return Date.now();
}

/** How long ago an instant (epoch ms) was, with the exact time as a tooltip. */
export function Ago({ ms }: { ms: number | null | undefined }) {
  const now = useNow();
  if (ms == null) return <span class="muted">—</span>;
  const at = new Date(ms);
  return (
    <time dateTime={at.toISOString()} title={at.toLocaleString()}>
      {formatDuration(Math.max(0, now - ms))} ago
    </time>
  );
}
