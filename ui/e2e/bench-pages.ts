// The browser half of bench/dashboard.py (not a test: numbers belong in BENCHMARKS.md).
//
//   node --import tsx e2e/bench-pages.ts interactive N
//     N loads of `/` in a fresh context each (cold HTTP cache) and N reloads in one page (warm):
//     the time from navigation start to performance.mark("hoist:services-interactive"), and
//     the JS and CSS the first load fetched. Prints one JSON line.
//   node --import tsx e2e/bench-pages.ts follow SERVICE
//     Opens SERVICE's Logs tab in a Chromium of its own and follows it; prints "following" once
//     the page says so and DevTools is detached, then counts the log messages its EventSource
//     got once stdin says "stop" (or closes); prints one JSON line.
//
// Environment: HOIST_E2E_API and HOIST_E2E_TOKEN (and HOIST_E2E_CHROMIUM), as for the suite.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { chromium, type Browser, type Page } from "playwright-core";

const api = process.env.HOIST_E2E_API ?? "";
const token = process.env.HOIST_E2E_TOKEN ?? "";
const MARK = "hoist:services-interactive";

/** As the suite runs it: no GPU here, and no network beyond loopback to reach. */
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.HOIST_E2E_CHROMIUM ?? "/usr/bin/chromium",
    args: FLAGS,
  });
}

async function signIn(page: Page): Promise<void> {
  await page.goto(new URL("/login", api).toString());
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL((u) => u.pathname !== "/login");
}

/** ms from navigation start to the mark, waiting for it at most 10 s. */
async function markTime(page: Page): Promise<number> {
  const handle = await page.waitForFunction(
    (mark) => {
      const e = performance.getEntriesByName(mark, "mark")[0];
      return e ? e.startTime : false;
    },
    MARK,
    { timeout: 10_000, polling: 20 },
  );
  return (await handle.jsonValue()) as number;
}

async function interactive(n: number): Promise<void> {
  const browser = await launch();
  const first = await browser.newContext();
  const page = await first.newPage();
  await signIn(page);
  const state = await first.storageState();
  const cold: number[] = [];
  // Where a cold load's time goes: each resource's start and end, ms from navigation start.
  const phases: Record<string, number[]>[] = [];
  let resources: { url: string; type: string; transfer: number; encoded: number; decoded: number }[] = [];
  for (let i = 0; i < n; i++) {
    const ctx = await browser.newContext({ storageState: state });
    const p = await ctx.newPage();
    await p.goto(new URL("/", api).toString());
    cold.push(await markTime(p));
    phases.push(
      await p.evaluate(() => {
        const nav = performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming;
        const out: Record<string, number[]> = {
          document: [0, nav.requestStart, nav.responseStart, nav.responseEnd].map(Math.round),
          domInteractive: [nav.domInteractive],
        };
        for (const m of [...performance.getEntriesByType("mark"), ...performance.getEntriesByType("paint")]) {
          out[m.name] = [Math.round(m.startTime)];
        }
        for (const r of performance.getEntriesByType("resource") as PerformanceResourceTiming[]) {
          const name = new URL(r.name).pathname.replace(/-[A-Za-z0-9_]{8}\./, ".");
          // start, request sent, first byte, last byte (0: not exposed, e.g. a reused connection's)
          out[name] = [r.startTime, r.requestStart, r.responseStart, r.responseEnd].map(Math.round);
        }
        return out;
      }),
    );
    if (i === 0) {
      resources = await p.evaluate(() =>
        (performance.getEntriesByType("resource") as PerformanceResourceTiming[])
          .filter((r) => /\.(js|css)(\?|$)/.test(r.name))
          .map((r) => ({ url: r.name, type: r.initiatorType, transfer: r.transferSize, encoded: r.encodedBodySize, decoded: r.decodedBodySize })),
      );
    }
    await ctx.close();
  }
  const warm: number[] = [];
  await page.goto(new URL("/", api).toString());
  await markTime(page);
  for (let i = 0; i < n; i++) {
    await page.reload();
    warm.push(await markTime(page));
  }
  await browser.close();
  console.log(JSON.stringify({ cold, warm, resources, phases }));
}

/** A Chromium of its own (a child of this process), with a DevTools port to attach to. */
async function spawnChromium(): Promise<{ child: ChildProcess; endpoint: string }> {
  const dir = mkdtempSync(join(tmpdir(), "hoist-bench-chromium-"));
  const child = spawn(
    process.env.HOIST_E2E_CHROMIUM ?? "/usr/bin/chromium",
    ["--headless", "--remote-debugging-port=0", `--user-data-dir=${dir}`, ...FLAGS, "about:blank"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const endpoint = await new Promise<string>((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`chromium gave no DevTools address: ${text}`)), 20_000);
    child.stderr?.on("data", (d: Buffer) => {
      text += d.toString();
      const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on("exit", (code) => reject(new Error(`chromium exited (${code}): ${text}`)));
  });
  return { child, endpoint };
}

/**
 * Opens SERVICE's Logs tab and leaves it following with **no DevTools client attached**: a
 * person's browser has none, and Playwright's would cost the page more than the page itself
 * (it enables the Network domain, which reports every EventSource message to this process).
 * So: a Chromium of its own, attached to over CDP to sign in and open the tab, then detached
 * until stdin says "stop"; then attached again to read what the page got.
 */
async function follow(service: string): Promise<void> {
  const { child, endpoint } = await spawnChromium();
  let browser = await chromium.connectOverCDP(endpoint);
  const page = await (browser.contexts()[0] ?? (await browser.newContext())).newPage();
  // Messages are counted in the page, by one listener more on its EventSource. A string, not a
  // function: tsx would compile a function with helpers the page lacks.
  await page.addInitScript(`
    window.__messages = 0;
    const Base = window.EventSource;
    window.EventSource = class extends Base {
      constructor(url, init) {
        super(url, init);
        const count = () => window.__messages++;
        this.addEventListener("message", count);
        this.addEventListener("skipped", count);
      }
    };`);
  await signIn(page);
  await page.goto(new URL(`/services/${service}/logs`, api).toString());
  await page.getByRole("status").filter({ hasText: "Following" }).waitFor({ timeout: 20_000 });
  // Detach (for a browser from connectOverCDP, close() disconnects and leaves it running).
  await browser.close();
  console.log("following");
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (line.trim() === "stop") break;
  }
  browser = await chromium.connectOverCDP(endpoint);
  const again = browser.contexts().flatMap((c) => c.pages()).find((p) => p.url().includes("/logs"));
  if (!again) throw new Error("the Logs page is gone");
  const messages = (await again.evaluate("window.__messages")) as number;
  const shown = await again.locator(".log-line").count();
  const status = await again.getByRole("status").filter({ hasText: /Following|Paused|Reconnecting/ }).first().innerText({ timeout: 5000 }).catch(() => "?");
  await browser.close();
  child.kill();
  console.log(JSON.stringify({ messages, shown, status }));
  // stdin's reader would keep the process alive.
  process.exit(0);
}

const [mode, arg] = process.argv.slice(2);
if (!api || !token) throw new Error("set HOIST_E2E_API and HOIST_E2E_TOKEN");
if (mode === "interactive") await interactive(Number(arg ?? "20"));
else if (mode === "follow" && arg) await follow(arg);
else throw new Error("usage: bench-pages.ts interactive N | follow SERVICE");
