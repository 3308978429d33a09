// "Cannot reach the server", shown while it cannot be reached. It probes with back-off
// (1 s, 2 s, 4 s ... at most 30 s) and clears itself on the first answer; every poll on the
// page then reloads (usePoll listens for the same event).
import { useEffect, useState } from "preact/hooks";
import { api, isReachable, onReachability } from "../api/client";

export function ConnectionBanner() {
  const [down, setDown] = useState(!isReachable());
  const [retryIn, setRetryIn] = useState(0);

  useEffect(() => onReachability((up) => setDown(!up)), []);

  useEffect(() => {
    if (!down) return;
    let stopped = false;
    let delay = 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let tick: ReturnType<typeof setInterval> | undefined;
    const wait = () => {
      let left = Math.round(delay / 1000);
      setRetryIn(left);
      clearInterval(tick);
      tick = setInterval(() => setRetryIn(--left > 0 ? left : 0), 1000);
      timer = setTimeout(probe, delay);
      delay = Math.min(delay * 2, 30_000);
    };
    const probe = async () => {
      if (stopped) return;
      // Any answer, even 401, means the server is back: the client's middleware says so.
      await api.GET("/v1/session").catch(() => undefined);
      if (!stopped && !isReachable()) wait();
    };
    wait();
    return () => {
      stopped = true;
      clearTimeout(timer);
      clearInterval(tick);
    };
  }, [down]);

  if (!down) return null;
  return (
    <div class="banner error offline" role="alert">
      Cannot reach the Hoist server. {retryIn > 0 ? `Retrying in ${retryIn}s…` : "Retrying…"}
    </div>
  );
}
