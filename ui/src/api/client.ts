// The one way the page talks to the server: a typed client on the types generated from the
// server's own /openapi.json (`npm run gen`), so a field the API renames fails `tsc`.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./schema";

export type Schemas = components["schemas"];
export type ApiErrorBody = Schemas["ApiErrorBody"];

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

// Whether the server answers at all. Any answer (even a 4xx) means it is reachable; a fetch that
// throws (connection refused, reset, offline) means it is not. The banner shows it and probes
// with back-off; pages that poll reload as soon as it is back.
type Reachability = (reachable: boolean) => void;
const listeners = new Set<Reachability>();
let reachable = true;
export function isReachable(): boolean {
  return reachable;
}
export function onReachability(f: Reachability): () => void {
  listeners.add(f);
  return () => listeners.delete(f);
}
export function setReachable(now: boolean) {
  if (now === reachable) return;
  reachable = now;
  for (const f of listeners) f(now);
}

const session: Middleware = {
  onRequest({ request }) {
    if (csrf && !["GET", "HEAD"].includes(request.method)) {
      request.headers.set("X-CSRF-Token", csrf);
    }
    return request;
  },
  async onResponse({ response, request }) {
    // A proxy in front of Hoist (or Vite's, in development) answers 502/503/504 itself when
    // Hoist is down: that is "unreachable" too. Hoist's own errors are JSON.
    const json = (response.headers.get("content-type") ?? "").includes("application/json");
    setReachable(!([502, 503, 504].includes(response.status) && !json));
    if (response.status === 401 && !new URL(request.url).pathname.startsWith("/v1/session")) {
      onUnauthorized();
    }
    if (response.status === 204) {
      // openapi-fetch leaves a 204's (empty) body unread, and Chromium then reports the request
      // as failed (net::ERR_ABORTED) when it is collected. Read it to its end.
      await response.arrayBuffer();
      return new Response(null, { status: 204, statusText: response.statusText, headers: response.headers });
    }
    return response;
  },
  onError({ error }) {
    // An aborted request (a page left, a poll cancelled) says nothing about the server.
    if (!(error instanceof DOMException && error.name === "AbortError")) setReachable(false);
    return error instanceof Error ? error : new Error(String(error));
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(session);

/** A request the server refused: its status and its `ApiErrorBody` (text and field). */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: ApiErrorBody | undefined,
  ) {
    super(body?.error ?? `the server answered ${status}`);
  }
  /** The request field the error is about (`port`, `memory`, ...), when the server named one. */
  get field(): string | null {
    return this.body?.field ?? null;
  }
}

/** What openapi-fetch resolves to: `data` on success, `error` (the body) otherwise. */
interface Answer<T> {
  data?: T;
  error?: unknown;
  response: Response;
}

/** The data of an answer, or an `ApiFailure` thrown with the server's error. */
export async function must<T>(answer: Promise<Answer<T>>): Promise<T> {
  const { data, error, response } = await answer;
  if (response.ok) return data as T;
  throw new ApiFailure(response.status, isErrorBody(error) ? error : undefined);
}

function isErrorBody(e: unknown): e is ApiErrorBody {
  return !!e && typeof e === "object" && "error" in e && typeof e.error === "string";
}

/** The `error` of an API answer, or a network failure, as one message. */
export function errorText(e: unknown): string {
  if (isErrorBody(e)) return e.error;
  if (e instanceof TypeError) return "cannot reach the Hoist server";
  if (e instanceof Error) return e.message;
  return String(e);
}
