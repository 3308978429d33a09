import { ApiFailure, errorText } from "../api/client";

/** Whether a failure is the server not answering at all (the connection banner shows that). */
export function isUnreachable(e: unknown): boolean {
  return e instanceof TypeError || (e instanceof ApiFailure && !e.body && [502, 503, 504].includes(e.status));
}

/** A failed load or refresh, unless it is the server being unreachable (said once, by the banner). */
export function LoadError({ error, what }: { error: unknown; what: string }) {
  if (error === undefined || isUnreachable(error)) return null;
  return (
    <p role="alert" class="banner error">
      Could not {what}: {errorText(error)}
    </p>
  );
}
