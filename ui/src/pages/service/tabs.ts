// The Service page's tabs, in order. A new tab (cron jobs, webhooks, domains, ...) is one entry
// here and one component: the page's header, routing and links come from this list.
import type { ComponentType } from "preact";
import { Overview } from "./Overview";
import { Deployments } from "./Deployments";
import { Logs } from "./Logs";
import { Env } from "./Env";
import { Metrics } from "./Metrics";
import { Settings } from "./Settings";

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
