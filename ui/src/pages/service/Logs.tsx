import type { TabProps } from "./tabs";

export function Logs({ name }: TabProps) {
  return <section aria-label="Logs">TODO: Logs of {name}</section>;
}
