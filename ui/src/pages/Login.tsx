// Sign-in: the admin token (or any API token) starts a session. The server answers with an
// HttpOnly cookie, which the page never sees, and a CSRF token for state-changing requests; the
// token itself is not kept anywhere.
import { useState } from "preact/hooks";
import { useLocation } from "preact-iso";
import { api, ApiFailure, errorText, must, setCsrf } from "../api/client";
import { Field } from "../components/Field";

/** Where to go after sign-in: `next` when it is a path on this site, else the services. */
function nextPath(query: Record<string, string>): string {
  const next = query.next ?? "";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/login") ? next : "/";
}

export function Login() {
  const { route, query } = useLocation();
  const [token, setToken] = useState("");
  const [fieldError, setFieldError] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    setFieldError(null);
    if (!token.trim()) {
      setFieldError("Enter an API token.");
      return;
    }
    setBusy(true);
    try {
      const info = await must(api.POST("/v1/session", { body: { token: token.trim() } }));
      setCsrf(info.csrf_token);
      route(nextPath(query), true);
    } catch (e) {
      // A 400 is about the input (empty); a 401 says the token is not valid, as an alert.
      if (e instanceof ApiFailure && e.status === 400 && e.field === "token") setFieldError(e.message);
      else setError(errorText(e));
      setBusy(false);
    }
  };

  return (
    <main id="main" class="login">
      <form class="card" onSubmit={submit} aria-busy={busy ? "true" : undefined} noValidate>
        <h1>
          <img src="/favicon.svg" alt="" width="28" height="28" /> Sign in to Hoist
        </h1>
        <p class="muted">
          Use the admin token (the file <code>admin-token</code> in the server's data directory) or any API
          token.
        </p>
        <Field name="token" label="API token" error={fieldError}>
          {(p) => (
            <input
              {...p}
              type="password"
              autoComplete="current-password"
              autoFocus
              value={token}
              onInput={(e) => setToken(e.currentTarget.value)}
            />
          )}
        </Field>
        {error && (
          <p role="alert" class="banner error">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
