// The Service page's tabs, in order. A new tab (cron jobs, webhooks, domains, ...) is one entry
// here and one component: the page's header, routing and links come from this list.
import type { ComponentType } from "preact";
import { lazy } from "preact-iso";
import { Overview } from "./Overview";
import { Deployments } from "./Deployments";
import { Logs } from "./Logs";
import { Env } from "./Env";
import { Settings } from "./Settings";

// The charts (uPlot) load when the tab is opened: they are most of the page's code and the
// first page must stay small (BENCHMARKS.md). preact-iso's Router shows the previous view until
// the chunk is there.
const Metrics = lazy(() => import("./Metrics").then((m) => m.Metrics));

export interface TabProps {
  /** The service's name, from the address. */
  name: string;
}

export interface Tab {
  /** The path segment after /services/NAME ("" for the overview). */
  path: string;
  label: string;
  component: ComponentType<TabProps>;
}

export const tabs: Tab[] = [
  { path: "", label: "Overview", component: Overview },
  { path: "deployments", label: "Deployments", component: Deployments },
  { path: "logs", label: "Logs", component: Logs },
  { path: "env", label: "Environment", component: Env },
  { path: "metrics", label: "Metrics", component: Metrics },
  { path: "settings", label: "Settings", component: Settings },
];

/** The address of a service's tab. */
export function tabPath(name: string, tab: string, query?: Record<string, string>): string {
  const q = query ? `?${new URLSearchParams(query)}` : "";
  return `/services/${encodeURIComponent(name)}${tab ? `/${tab}` : ""}${q}`;
}
