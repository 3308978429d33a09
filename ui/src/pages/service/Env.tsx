import type { TabProps } from "./tabs";

export function Env({ name }: TabProps) {
  return <section aria-label="Env">TODO: Env of {name}</section>;
}
