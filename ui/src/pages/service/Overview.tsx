import type { TabProps } from "./tabs";

export function Overview({ name }: TabProps) {
  return <section aria-label="Overview">TODO: Overview of {name}</section>;
}
