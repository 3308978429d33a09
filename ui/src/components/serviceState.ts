import type { Schemas } from "../api/client";
import { inProgress } from "./StateBadge";

type ServiceView = Schemas["ServiceView"];

/** Instances running now, by state. */
export function instanceCounts(s: ServiceView): { ready: number; frozen: number } {
  let ready = 0;
  let frozen = 0;
  for (const i of s.running) {
    if (i.state === "ready") ready++;
    else if (i.state === "frozen") frozen++;
  }
  return { ready, frozen };
}

/**
 * One word for a service: its newest deployment's state while that one is on its way, else
 * whether it serves (`running`, `frozen`, `idle` when scaled to zero) or why not.
 */
export function serviceState(s: ServiceView): string {
  const latest = s.deployments[0];
  if (latest && inProgress(latest.state)) return latest.state;
  if (!s.live_deployment) return latest?.state === "failed" ? "failed" : "not deployed";
  const { ready, frozen } = instanceCounts(s);
  if (ready > 0) return "running";
  if (frozen > 0) return "frozen";
  return "idle";
}
