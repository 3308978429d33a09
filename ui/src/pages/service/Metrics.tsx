import type { TabProps } from "./tabs";

export function Metrics({ name }: TabProps) {
  return <section aria-label="Metrics">TODO: Metrics of {name}</section>;
}
