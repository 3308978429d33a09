import type { TabProps } from "./tabs";

export function Deployments({ name }: TabProps) {
  return <section aria-label="Deployments">TODO: Deployments of {name}</section>;
}
