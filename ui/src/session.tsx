// The signed-in session. The cookie is HttpOnly: the page never sees it, and learns whether it
// has one (and its CSRF token) from GET /v1/session. Without one, every page leads to /login.
import { createContext, type ComponentChildren } from "preact";
import { useContext, useLayoutEffect, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { getSession } from "./api/early";
import { onReachability, setCsrf, whenUnauthorized, type Schemas } from "./api/client";
import { Loading } from "./components/Loading";

type SessionInfo = Schemas["SessionInfo"];
const Ctx = createContext<SessionInfo | null>(null);

export function useSession(): SessionInfo | null {
  return useContext(Ctx);
}

/** /login, with the page the user was on as `next` (so sign-in leads back to it). */
export function loginPath(): string {
  const here = location.pathname + location.search;
  return here === "/" || here.startsWith("/login") ? "/login" : `/login?next=${encodeURIComponent(here)}`;
}

export function Session({ children }: { children: ComponentChildren }) {
  const { route } = useLocation();
  const [info, setInfo] = useState<SessionInfo | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  // A layout effect: the session's answer (asked for as the script started) is taken as soon as
  // it is there, not after a painted frame.
  useLayoutEffect(() => {
    whenUnauthorized(() => {
      setCsrf(null);
      route(loginPath(), true);
    });
    let stopped = false;
    const check = () =>
      getSession().then(
        ({ data, response }) => {
          if (stopped) return;
          if (data) {
            setCsrf(data.csrf_token);
            setInfo(data);
            setFailed(null);
          } else if (response.status === 401) {
            route(loginPath(), true);
          } else {
            setFailed(`the server answered ${response.status}`);
          }
        },
        // Unreachable: the connection banner says so and probes; we check again when it is back.
        () => undefined,
      );
    check();
    const off = onReachability((up) => up && !stopped && check());
    return () => {
      stopped = true;
      off();
    };
  }, []);
  if (failed) return <p role="alert" class="banner error">The Hoist server cannot start a session: {failed}</p>;
  if (!info) return <Loading />;
  return <Ctx.Provider value={info}>{children}</Ctx.Provider>;
}
