// The five scaling inputs, shared by Manual Deploy and Settings (same labels, same checks).
import type { Schemas } from "../api/client";
import { Field, type Errors } from "./Field";
import { formatDuration } from "./format";
import type { ScalingText } from "./validate";

interface Props {
  value: ScalingText;
  onChange: (v: ScalingText) => void;
  errors: Errors;
  /** Shown as placeholders: what an empty input means. */
  defaults?: Schemas["Scaling"];
}

export function ScalingFields({ value, onChange, errors, defaults }: Props) {
  const set = (k: keyof ScalingText) => (e: { currentTarget: HTMLInputElement }) =>
    onChange({ ...value, [k]: e.currentTarget.value });
  const num = (k: "min_instances" | "max_instances" | "concurrency", label: string, hint: string) => (
    <Field name={k} label={label} hint={hint} error={errors[k]}>
      {(p) => (
        <input
          {...p}
          type="number"
          inputMode="numeric"
          min={k === "min_instances" ? 0 : 1}
          value={value[k]}
          placeholder={defaults ? String(defaults[k]) : undefined}
          onInput={set(k)}
        />
      )}
    </Field>
  );
  const dur = (k: "idle_freeze" | "idle_stop", label: string, hint: string, ms?: number) => (
    <Field name={k} label={label} hint={hint} error={errors[k]}>
      {(p) => (
        <input
          {...p}
          type="text"
          spellcheck={false}
          value={value[k]}
          placeholder={ms != null ? formatDuration(ms) : undefined}
          onInput={set(k)}
        />
      )}
    </Field>
  );
  return (
    <fieldset class="grid">
      <legend>Scaling</legend>
      {num("min_instances", "Min instances", "Kept running with no traffic; 0 scales to zero.")}
      {num("max_instances", "Max instances", "The most that run at once (1 to 100).")}
      {num("concurrency", "Concurrency", "Requests one instance takes at once.")}
      {dur("idle_freeze", "Idle freeze", "Idle time before an instance is frozen.", defaults?.idle_freeze_ms)}
      {dur("idle_stop", "Idle stop", "Idle time before a frozen instance stops.", defaults?.idle_stop_ms)}
    </fieldset>
  );
}
