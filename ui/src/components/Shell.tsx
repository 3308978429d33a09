import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, errorText, setCsrf } from "../api/client";

/** The top bar (services, Manual Deploy, sign out) around every signed-in page. */
export function Shell({ children }: { children: ComponentChildren }) {
  const { route, path } = useLocation();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const signOut = async () => {
    setBusy(true);
    try {
      const { response, error } = await api.DELETE("/v1/session");
      // 401: the session had already ended; the user is signed out either way.
      if (!response.ok && response.status !== 401) throw error;
      setCsrf(null);
      route("/login");
    } catch (e) {
      setError(`Could not sign out: ${errorText(e)}`);
    } finally {
      setBusy(false);
    }
  };
  const current = (p: string) => (p === "/" ? path === "/" || path.startsWith("/services/") : path === p);
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href="/" aria-label="Hoist home">
          <img src="/favicon.svg" alt="" width="22" height="22" /> Hoist
        </a>
        <nav aria-label="Main">
          <a href="/" aria-current={current("/") ? "page" : undefined}>
            Services
          </a>
          <a href="/new" class="button primary" aria-current={current("/new") ? "page" : undefined}>
            Manual Deploy
          </a>
          <button type="button" class="link" onClick={signOut} disabled={busy}>
            Sign out
          </button>
        </nav>
      </header>
      {error && (
        <p role="alert" class="banner error">
          {error}
        </p>
      )}
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </>
  );
}
