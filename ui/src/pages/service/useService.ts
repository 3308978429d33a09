import { api, ApiFailure, must } from "../../api/client";
import { usePoll } from "../../components/usePoll";

/** One service in detail, refreshed every few seconds (instances come and go). */
export function useService(name: string, intervalMs = 3000) {
  return usePoll(() => must(api.GET("/v1/services/{name}", { params: { path: { name } } })), intervalMs, [name]);
}

/** Whether a load failed because there is no such service. */
export function isNotFound(e: unknown): boolean {
  return e instanceof ApiFailure && e.status === 404;
}
