// The first page's requests, started as soon as the script runs instead of one after the
// other: the session check and, on `/`, the services list go out together, so a cold load
// waits one round trip less (BENCHMARKS.md, "services page interactive"). Each early answer is
// used once, by the first load that asks for it; later loads ask the server again.
import { api, must } from "./client";

const loadSession = () => api.GET("/v1/session");
const loadServices = () => must(api.GET("/v1/services"));

let session: ReturnType<typeof loadSession> | undefined;
let services: ReturnType<typeof loadServices> | undefined;

/** Starts the requests the page at `path` will make first. */
export function startEarly(path: string) {
  if (path.startsWith("/login")) return;
  session = loadSession();
  if (path === "/") {
    services = loadServices();
    // Not taken when there is no session (the page goes to /login): not an unhandled rejection.
    services.catch(() => undefined);
  }
}

/** `GET /v1/session`: the early answer the first time, a new request after. */
export function getSession(): ReturnType<typeof loadSession> {
  const p = session ?? loadSession();
  session = undefined;
  return p;
}

/** `GET /v1/services` (throwing an `ApiFailure` when refused), early the first time. */
export function getServices(): ReturnType<typeof loadServices> {
  const p = services ?? loadServices();
  services = undefined;
  return p;
}
