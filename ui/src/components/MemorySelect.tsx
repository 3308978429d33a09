// Memory, with the CPU share each size buys (the server's memory→CPU table).
import type { Schemas } from "../api/client";
import { Field } from "./Field";
import { cpuMillicores, memoryLabel } from "./format";

interface Props {
  server: Schemas["ServerInfo"] | undefined;
  value: number | null;
  onChange: (mb: number) => void;
  error?: string | null;
  hint?: string;
}

export function MemorySelect({ server, value, onChange, error, hint }: Props) {
  const options = server?.memory_options ?? [];
  const selected = value ?? server?.memory.default_mb ?? null;
  return (
    <Field name="memory" label="Memory" error={error} hint={hint ?? "CPU follows memory: one full vCPU at 1769 MB."}>
      {(p) => (
        <select
          {...p}
          value={selected == null ? "" : String(selected)}
          disabled={!server}
          onChange={(e) => onChange(Number(e.currentTarget.value))}
        >
          {!server && <option value="">Loading…</option>}
          {selected != null && !options.some((o) => o.memory_mb === selected) && (
            <option value={String(selected)}>{memoryLabel(selected, cpuMillicores(selected))}</option>
          )}
          {options.map((o) => (
            <option key={o.memory_mb} value={String(o.memory_mb)}>
              {memoryLabel(o.memory_mb, o.cpu_millicores)}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}
