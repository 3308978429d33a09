import type { TabProps } from "./tabs";

export function Settings({ name }: TabProps) {
  return <section aria-label="Settings">TODO: Settings of {name}</section>;
}
