// Numbers as the CLI prints them, so the page and `hoist` read the same.

/**
 * A duration the way Hoist prints every one (`hoist_core::format_duration`): `0s`, `850ms`,
 * `2.5s`, `45s`, `1m30s`, `15m`, `2h30m`, `1d`, `7d`. From a minute up the two largest units,
 * the rest cut; under a minute a part second shows its hundredths, cut.
 */
export function formatDuration(ms: number): string {
  ms = Math.max(0, Math.floor(ms));
  const days = Math.floor(ms / 86_400_000);
  const hours = Math.floor(ms / 3_600_000) % 24;
  const minutes = Math.floor(ms / 60_000) % 60;
  const seconds = Math.floor(ms / 1000) % 60;
  const pair = (big: number, bigUnit: string, small: number, smallUnit: string) =>
    small === 0 ? `${big}${bigUnit}` : `${big}${bigUnit}${small}${smallUnit}`;
  if (ms === 0) return "0s";
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) {
    if (ms % 1000 === 0) return `${ms / 1000}s`;
    const hundredths = String(Math.floor((ms % 1000) / 10)).padStart(2, "0");
    return `${`${Math.floor(ms / 1000)}.${hundredths}`.replace(/0+$/, "").replace(/\.$/, "")}s`;
  }
  if (ms < 3_600_000) return pair(minutes, "m", seconds, "s");
  if (ms < 86_400_000) return pair(hours, "h", minutes, "m");
  return pair(days, "d", hours, "h");
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Milliseconds of a duration as the server reads them (`500ms`, `30s`, `2h30m`, `1h 5m`), or
 * null when the text is not one. A bare number is refused, as the server refuses it: `5` could
 * mean seconds or minutes.
 */
export function parseDuration(text: string): number | null {
  const input = text.trim();
  if (!/^(\d+\s*(ms|s|m|h|d)\s*)+$/.test(input)) return null;
  let total = 0;
  for (const [, n, unit] of input.matchAll(/(\d+)\s*(ms|s|m|h|d)/g)) {
    total += Number(n) * (UNITS[unit ?? ""] ?? 0);
  }
  return total;
}

/** Bytes in the largest unit that keeps a number above one: `812 KB`, `41.3 MB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 || value >= 100 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** A CPU share in millicores as vCPUs: `0.29 vCPU`, `1 vCPU`. */
export function formatCpu(millicores: number): string {
  const v = millicores / 1000;
  return `${Number.isInteger(v) ? v : v.toFixed(2)} vCPU`;
}

/**
 * The CPU share a memory size buys, as `MemoryMb::cpu_millicores` computes it: proportional up
 * to one core at 1769 MB, then whole cores. For a size the server's table does not list.
 */
export function cpuMillicores(mb: number): number {
  const perCore = 1769;
  if (mb <= perCore) return Math.floor((mb * 1000) / perCore);
  return Math.min(4, Math.ceil(mb / perCore)) * 1000;
}

/** A memory option of the deploy form: `512 MB · 0.29 vCPU`. */
export function memoryLabel(mb: number, millicores: number): string {
  return `${mb} MB · ${formatCpu(millicores)}`;
}

/** A count with thousands separators ("—" when a server too old to send it did not). */
export function formatCount(n: number | null | undefined): string {
  return n == null ? "—" : n.toLocaleString("en-US");
}

/** The first 7 characters of a commit, as git shows it. */
export function shortSha(sha: string | null | undefined): string {
  return sha ? sha.slice(0, 7) : "—";
}

/** The first line of a possibly multi-line text (reasons), for a table cell. */
export function firstLine(text: string | null | undefined): string {
  return (text ?? "").split("\n")[0] ?? "";
}
