// The signed-in session. The cookie is HttpOnly: the page never sees it, and learns whether it
// has one (and its CSRF token) from GET /v1/session. Without one, every page leads to /login.
import { createContext, type ComponentChildren } from "preact";
import { useContext, useEffect, useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, setCsrf, whenUnauthorized, type Schemas } from "./api/client";

type SessionInfo = Schemas["SessionInfo"];
const Ctx = createContext<SessionInfo | null>(null);

export function useSession(): SessionInfo | null {
  return useContext(Ctx);
}

export function loginPath(): string {
  const here = location.pathname + location.search;
  return here === "/" || here.startsWith("/login") ? "/login" : `/login?next=${encodeURIComponent(here)}`;
}

export function Session({ children }: { children: ComponentChildren }) {
  const { route } = useLocation();
  const [info, setInfo] = useState<SessionInfo | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    whenUnauthorized(() => {
      setCsrf(null);
      route(loginPath(), true);
    });
    api.GET("/v1/session").then(
      ({ data, response }) => {
        if (data) {
          setCsrf(data.csrf_token);
          setInfo(data);
        } else if (response.status !== 401) {
          setFailed(`the server answered ${response.status}`);
        }
      },
      (e) => setFailed(String(e)),
    );
  }, []);
  if (failed) return <p role="alert" class="banner error">Cannot reach the Hoist server: {failed}</p>;
  if (!info) return <p class="loading" aria-busy="true">Loading…</p>;
  return <Ctx.Provider value={info}>{children}</Ctx.Provider>;
}
