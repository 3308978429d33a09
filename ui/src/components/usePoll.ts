// Data a page keeps fresh: loaded at once, then again every `intervalMs` while the page is
// visible (0: once). A failed load keeps the last data and retries with back-off (doubling, at most 30 s);
// when the server is reachable again (the connection banner's probe) it reloads at once.
import { useCallback, useLayoutEffect, useRef, useState } from "preact/hooks";
import { ApiFailure, onReachability } from "../api/client";

export interface Polled<T> {
  /** The last data loaded; kept while a reload fails. */
  data: T | undefined;
  /** The last load's failure, cleared by the next success. */
  error: unknown;
  /** True until the first load ended (with data or an error). */
  loading: boolean;
  /** Loads now (after a change the user made), then keeps the interval. */
  reload: () => void;
}

const MAX_BACKOFF_MS = 30_000;

export function usePoll<T>(load: () => Promise<T>, intervalMs: number, deps: unknown[]): Polled<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const kick = useRef<() => void>(() => {});
  const loadRef = useRef(load);
  loadRef.current = load;

  // A layout effect, not an effect: Preact runs effects after the next frame is painted (up to
  // 100 ms later when frames are slow), and the first load must not wait for that.
  useLayoutEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failures = 0;
    let running = false;
    setData(undefined);
    setError(undefined);
    setLoading(true);

    const schedule = (ms: number) => {
      clearTimeout(timer);
      timer = setTimeout(run, ms);
    };
    async function run() {
      if (stopped || running) return;
      // A hidden tab does not poll; it reloads when shown again.
      if (document.hidden) return;
      running = true;
      let refused = false;
      try {
        const next = await loadRef.current();
        if (stopped) return;
        failures = 0;
        setData(next);
        setError(undefined);
      } catch (e) {
        if (stopped) return;
        failures++;
        refused = e instanceof ApiFailure && e.status >= 400 && e.status < 500 && ![408, 429].includes(e.status);
        setError(e);
      } finally {
        running = false;
      }
      if (stopped) return;
      setLoading(false);
      // A refusal (404 for a deleted service, 400, 403) does not change by asking again: it
      // stays on the page until `reload()`; only a failure of the server or the network is retried.
      if (refused) return;
      if (failures) schedule(Math.min(Math.max(intervalMs, 1000) * 2 ** failures, MAX_BACKOFF_MS));
      else if (intervalMs > 0) schedule(intervalMs);
    }
    kick.current = () => {
      failures = 0;
      schedule(0);
    };
    const visible = () => {
      if (!document.hidden && (intervalMs > 0 || failures > 0)) schedule(0);
    };
    document.addEventListener("visibilitychange", visible);
    const off = onReachability((up) => up && (intervalMs > 0 || failures > 0) && schedule(0));
    run();
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", visible);
      off();
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);

  const reload = useCallback(() => kick.current(), []);
  return { data, error, loading, reload };
}
