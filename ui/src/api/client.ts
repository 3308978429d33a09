// The one way the page talks to the server: a typed client on the types generated from the
// server's own /openapi.json (`npm run gen`), so a field the API renames fails `tsc`.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];

/** The CSRF token of the session, sent with every state-changing request (X-CSRF-Token). */
let csrf: string | null = null;
export function setCsrf(token: string | null) {
  csrf = token;
}

/** Called when the server says the session is gone: the app sends the user to /login. */
let onUnauthorized: () => void = () => {};
export function whenUnauthorized(f: () => void) {
  onUnauthorized = f;
}

const session: Middleware = {
  onRequest({ request }) {
    if (csrf && !["GET", "HEAD"].includes(request.method)) {
      request.headers.set("X-CSRF-Token", csrf);
    }
    return request;
  },
  onResponse({ response, request }) {
    if (response.status === 401 && !request.url.endsWith("/v1/session")) onUnauthorized();
    return response;
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(session);

/** The `error` of an API answer, or a network failure, as one message. */
export function errorText(e: unknown): string {
  if (e && typeof e === "object" && "error" in e && typeof e.error === "string") return e.error;
  if (e instanceof Error) return e.message;
  return String(e);
}
