import type { ComponentChildren } from "preact";
import { useLocation } from "preact-iso";
import { api, setCsrf } from "../api/client";

/** The top bar (services, Manual Deploy, sign out) around every signed-in page. */
export function Shell({ children }: { children: ComponentChildren }) {
  const { route } = useLocation();
  const signOut = async () => {
    await api.DELETE("/v1/session");
    setCsrf(null);
    route("/login");
  };
  return (
    <>
      <header class="topbar">
        <a class="brand" href="/">Hoist</a>
        <nav aria-label="Main">
          <a href="/">Services</a>
          <a href="/new" class="button primary">Manual Deploy</a>
          <button type="button" class="link" onClick={signOut}>Sign out</button>
        </nav>
      </header>
      <main>{children}</main>
    </>
  );
}
