// One time-series chart, drawn by uPlot. uPlot is loaded on first use (a dynamic import), so the
// first page's bundle does not carry it: only the Metrics tab needs it.
import type uPlot from "uplot";
import { useEffect, useRef, useState } from "preact/hooks";

type UPlot = typeof uPlot;
let loading: Promise<UPlot> | null = null;
function loadUplot(): Promise<UPlot> {
  loading ??= Promise.all([import("uplot"), import("uplot/dist/uPlot.min.css")]).then(([m]) => m.default);
  return loading;
}

export interface SeriesSpec {
  label: string;
  color: string;
  /** Fill under the line (for a single-series chart). */
  fill?: boolean;
}

export interface ChartProps {
  title: string;
  /** What the values are, shown under the title and on hover ("per minute", "ms"). */
  unit: string;
  /** Seconds since the epoch, then one array per series (null = no value that minute). */
  data: [number[], ...(number | null)[][]];
  series: SeriesSpec[];
  /** Formats a value on the axis and in the legend. */
  format?: (v: number) => string;
  /** Counts (requests, instances): the axis has whole-number steps only. */
  integer?: boolean;
  /** Draw each value as a point too (sparse series, e.g. latency of a quiet service, where a
   * value between two empty minutes would have no line). */
  points?: boolean;
  /** Whether the data is all empty (the chart then says so instead of drawing a flat line). */
  empty: boolean;
}

const HEIGHT = 170;

function cssVar(name: string, fallback: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

function options(p: ChartProps, width: number): uPlot.Options {
  const fmt = p.format ?? ((v: number) => String(Math.round(v * 100) / 100));
  const muted = cssVar("--muted", "#5d6472");
  const grid = cssVar("--line", "#dde1e8");
  const axis: uPlot.Axis = {
    stroke: muted,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
  };
  return {
    width,
    height: HEIGHT,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      axis,
      {
        ...axis,
        size: 56,
        values: (_u, ticks) => ticks.map(fmt),
        ...(p.integer ? { incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000, 100000] } : {}),
      },
    ],
    series: [
      {},
      ...p.series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 1.5,
        fill: s.fill ? `${s.color}22` : undefined,
        spanGaps: false,
        value: (_u: uPlot, v: number | null) => (v == null ? "–" : `${fmt(v)} ${p.unit}`),
        points: p.points ? { show: true, size: 4 } : { show: false },
      })),
    ],
  };
}

export function Chart(p: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [failed, setFailed] = useState<string | null>(null);

  // Made once, then fed new data; resized with its box.
  useEffect(() => {
    let gone = false;
    let ro: ResizeObserver | undefined;
    loadUplot().then(
      (U) => {
        const el = box.current;
        if (gone || !el) return;
        plot.current = new U(options(p, el.clientWidth || 300), p.data as uPlot.AlignedData, el);
        ro = new ResizeObserver(() => {
          const w = el.clientWidth;
          if (w > 0 && plot.current && plot.current.width !== w) plot.current.setSize({ width: w, height: HEIGHT });
        });
        ro.observe(el);
      },
      (e: unknown) => setFailed(String(e)),
    );
    return () => {
      gone = true;
      ro?.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);
  useEffect(() => {
    plot.current?.setData(p.data as uPlot.AlignedData);
  }, [p.data]);

  const id = `chart-${p.title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return (
    <section class="chart card" aria-labelledby={id}>
      <h3 id={id}>{p.title}</h3>
      <p class="hint">{p.unit}</p>
      <div class="chart-box" ref={box} role="img" aria-label={`${p.title} chart`} />
      {p.empty ? <p class="chart-empty">No data in this range yet.</p> : null}
      {failed ? <p class="field-error">The chart could not load: {failed}</p> : null}
    </section>
  );
}
