// The checks the server makes, made before sending, so a form says what is wrong at once and
// next to the input. The server checks again; its 400 lands on the same field.
import { parseDuration } from "./format";
import type { Errors } from "./Field";

const NAME = /^[a-z][a-z0-9-]*$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A service name's rule it breaks, or null. */
export function nameError(name: string): string | null {
  if (!name) return null;
  if (name.length > 63) return "At most 63 characters.";
  if (!/^[a-z0-9-]*$/.test(name)) return "Only lowercase letters a-z, digits 0-9 and '-'.";
  if (!NAME.test(name)) return "Must start with a lowercase letter.";
  if (name.endsWith("-")) return "Must not end with '-'.";
  return null;
}

export function portError(port: string): string | null {
  if (!port.trim()) return null;
  const n = Number(port);
  return /^\d+$/.test(port.trim()) && n >= 1 && n <= 65535 ? null : "A port from 1 to 65535.";
}

/** `KEY=VALUE` lines; blank lines and `#` comments are skipped. */
export function envLines(text: string): { lines: string[]; error: string | null } {
  const lines: string[] = [];
  const rows = text.split("\n");
  for (let i = 0; i < rows.length; i++) {
    const row = (rows[i] ?? "").replace(/\r$/, "");
    if (!row.trim() || row.trimStart().startsWith("#")) continue;
    const eq = row.indexOf("=");
    if (eq < 0) return { lines, error: `Line ${i + 1}: expected KEY=VALUE (no '=').` };
    const key = row.slice(0, eq).trim();
    if (!ENV_NAME.test(key)) {
      return { lines, error: `Line ${i + 1}: the name must be letters, digits and '_', not starting with a digit.` };
    }
    lines.push(`${key}=${row.slice(eq + 1)}`);
  }
  return { lines, error: null };
}

export interface ScalingText {
  min_instances: string;
  max_instances: string;
  concurrency: string;
  idle_freeze: string;
  idle_stop: string;
}

export const emptyScaling: ScalingText = {
  min_instances: "",
  max_instances: "",
  concurrency: "",
  idle_freeze: "",
  idle_stop: "",
};

function count(text: string, min: number, max: number, errors: Errors, field: string): number | null {
  if (!text.trim()) return null;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max) {
    errors[field] = `A whole number from ${min} to ${max}.`;
    return null;
  }
  return n;
}

/** The scaling fields as the API takes them (unset ones left out), with their errors. */
export function scalingValues(s: ScalingText, errors: Errors) {
  const min_instances = count(s.min_instances, 0, 100, errors, "min_instances");
  const max_instances = count(s.max_instances, 1, 100, errors, "max_instances");
  const concurrency = count(s.concurrency, 1, 100_000, errors, "concurrency");
  if (min_instances != null && max_instances != null && min_instances > max_instances) {
    errors.min_instances = "At most the max instances.";
  }
  const freeze = s.idle_freeze.trim() ? parseDuration(s.idle_freeze) : null;
  const stop = s.idle_stop.trim() ? parseDuration(s.idle_stop) : null;
  const durationRule = "A duration with a unit, like 500ms, 30s, 15m or 1h.";
  if (s.idle_freeze.trim() && freeze == null) errors.idle_freeze = durationRule;
  if (s.idle_stop.trim() && stop == null) errors.idle_stop = durationRule;
  if (freeze != null && stop != null && stop <= freeze) errors.idle_stop = "Must be longer than the idle freeze.";
  return {
    ...(min_instances != null && { min_instances }),
    ...(max_instances != null && { max_instances }),
    ...(concurrency != null && { concurrency }),
    ...(freeze != null && { idle_freeze: s.idle_freeze.trim() }),
    ...(stop != null && { idle_stop: s.idle_stop.trim() }),
  };
}
