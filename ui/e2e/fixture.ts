// What every browser test shares: the server under test (from the environment that
// crates/hoist/tests/dashboard.rs sets), Debian's chromium driven by playwright-core, pages
// that record every console error, page error and failed request, and steps that each save a
// screenshot and fail on anything the page got wrong.

import { mkdirSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { chromium, type Browser, type BrowserContext, type CDPSession, type Page } from "playwright-core";

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the suite with cargo test -p hoist --test dashboard`);
  }
  return value;
}

export const env = {
  /** The API listener, which serves the dashboard at `/`: http://127.0.0.1:PORT */
  api: required("HOIST_E2E_API"),
  gatewayPort: Number(required("HOIST_E2E_GATEWAY_PORT")),
  token: required("HOIST_E2E_TOKEN"),
  /** The absolute path of examples/flask-hello, on the server's machine (this one). */
  app: required("HOIST_E2E_APP"),
  artifacts: required("HOIST_E2E_ARTIFACTS"),
  chromium: process.env.HOIST_E2E_CHROMIUM ?? "/usr/bin/chromium",
};

/** Bounds for waits on the server: a build of flask-hello on a busy 2-core machine takes
 * minutes (pip install), a page's own work seconds. */
export const BUILD_TIMEOUT = 6 * 60_000;
export const PAGE_TIMEOUT = 20_000;

export async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: env.chromium,
    headless: true,
    // Without the networking flags Chromium keeps calling home, into a closed network.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A response with an error status that a step provokes on purpose (a wrong token's 401). */
interface Expected {
  status: number;
  url: RegExp;
  why: string;
}

/** A stream the test itself makes the page close (Pause), whose abort is no failure. */
interface ExpectedClose {
  url: RegExp;
  why: string;
}

interface Started {
  /** The page's main-frame URL when the request started. */
  pageUrl: string;
  /** How many main-frame navigations (same-document ones included) had happened then. */
  navs: number;
  /** How many documents had loaded in the page then. */
  loads: number;
}

/**
 * A page whose problems are recorded: console errors, uncaught page errors, failed requests
 * and responses >= 400. They are judged when a step ends (`problems()`), not when they come,
 * because an event's order against the navigation that explains it is not guaranteed.
 */
export class Watched {
  private consoleErrors: { text: string; url: string }[] = [];
  private pageErrors: string[] = [];
  private failed: { url: string; method: string; type: string; error: string; started: Started }[] = [];
  private badResponses: { url: string; status: number; method: string }[] = [];
  private expected: Expected[] = [];
  private expectedCloses: ExpectedClose[] = [];
  private started = new WeakMap<object, Started>();
  private navs = 0;
  private loads = 0;
  /** Per stream URL, how many of its responses delivered the server's last event (`id: end`). */
  private ended = new Map<string, number>();
  private closing = false;

  constructor(readonly page: Page) {
    page.setDefaultTimeout(PAGE_TIMEOUT);
    page.on("framenavigated", (frame) => {
      if (frame === page.mainFrame()) this.navs++;
    });
    page.on("domcontentloaded", () => this.loads++);
    page.on("request", (req) => this.started.set(req, { pageUrl: page.url(), navs: this.navs, loads: this.loads }));
    page.on("console", (msg) => {
      if (msg.type() === "error") this.consoleErrors.push({ text: msg.text(), url: msg.location().url });
    });
    page.on("pageerror", (err) => this.pageErrors.push(`${err.name}: ${err.message}`));
    page.on("requestfailed", (req) => {
      const started = this.started.get(req) ?? { pageUrl: page.url(), navs: this.navs, loads: this.loads };
      this.failed.push({ url: req.url(), method: req.method(), type: req.resourceType(), error: req.failure()?.errorText ?? "?", started });
    });
    page.on("response", (res) => {
      if (res.status() >= 400) {
        this.badResponses.push({ url: res.url(), status: res.status(), method: res.request().method() });
      }
    });
    // A native confirm() would be dismissed by Playwright, silently cancelling the action:
    // accept it, and say so in the output.
    page.on("dialog", (d) => {
      console.log(`  (the page asked "${d.message()}": accepted)`);
      void d.accept();
    });
  }

  /** Follows the page's EventSource messages (Playwright has no event for them; Chromium's
   * DevTools protocol does) to know which streams delivered their last event. */
  async watchStreams(cdp: CDPSession): Promise<void> {
    const urls = new Map<string, string>();
    cdp.on("Network.requestWillBeSent", (e) => urls.set(e.requestId, e.request.url));
    cdp.on("Network.eventSourceMessageReceived", (e) => {
      const url = urls.get(e.requestId);
      if (url && e.eventId === "end") this.ended.set(url, (this.ended.get(url) ?? 0) + 1);
    });
    await cdp.send("Network.enable");
  }

  /** From now on, a `status` answer to a URL matching `url` is what the step wants. */
  expect(status: number, url: RegExp, why: string): void {
    this.expected.push({ status, url, why });
  }

  /** The page will close a stream matching `url` because the test asks it to. */
  expectClose(url: RegExp, why: string): void {
    this.expectedCloses.push({ url, why });
  }

  /** Ends what `expect` and `expectClose` allowed. */
  clearExpected(): void {
    this.expected = [];
    this.expectedCloses = [];
  }

  private isExpected(status: number, url: string): boolean {
    return this.expected.some((e) => e.status === status && e.url.test(url));
  }

  /**
   * Everything wrong so far, cleared once read. An EventSource the page closes when it leaves
   * the view shows as net::ERR_ABORTED, as does an API call in flight when a new document
   * replaces the page (the test's page.goto): only these are accepted, only with that error,
   * and only when the page has navigated since the request started (a new document for a
   * fetch), or the stream had delivered its last event (`id: end`), or the test closes the
   * page, or asked for the close with `expectClose`.
   */
  problems(): string[] {
    const out: string[] = [];
    for (const f of this.failed) {
      const left = this.navs > f.started.navs || this.page.url() !== f.started.pageUrl;
      const asked = this.expectedCloses.some((c) => c.url.test(f.url));
      // A stream ends when the page leaves its view (same-document navigations too); a fetch,
      // or a lazily imported chunk (the Metrics tab's uPlot) or its stylesheet, or the
      // document's icon (which the browser loads for it, type "other"), only when a new
      // document replaces the one that asked for it.
      const icon = f.type === "other" && new URL(f.url).pathname === "/favicon.svg";
      const replaced = (["fetch", "script", "stylesheet"].includes(f.type) || icon) && this.loads > f.started.loads;
      const moved = f.type === "eventsource" ? left : replaced;
      // A deployment's stream that got its last event: the page closes it there and then,
      // which can beat the server's own end of the response.
      const finished = f.type === "eventsource" && (this.ended.get(f.url) ?? 0) > 0;
      if (finished) this.ended.set(f.url, (this.ended.get(f.url) ?? 1) - 1);
      const closedByPage = f.error === "net::ERR_ABORTED" && (moved || asked || finished || this.closing);
      if (!closedByPage) out.push(`request failed: ${f.method} ${f.type} ${f.url}: ${f.error}`);
    }
    for (const r of this.badResponses) {
      if (!this.isExpected(r.status, r.url)) out.push(`response ${r.status} to ${r.method} ${r.url}`);
    }
    for (const c of this.consoleErrors) {
      // Chromium logs every response >= 400 as a console error too; an expected one is fine.
      const m = /^Failed to load resource: the server responded with a status of (\d+)/.exec(c.text);
      if (m && this.isExpected(Number(m[1]), c.url)) continue;
      out.push(`console error: ${c.text}${c.url ? ` (${c.url})` : ""}`);
    }
    for (const e of this.pageErrors) out.push(`page error: ${e}`);
    this.failed = [];
    this.badResponses = [];
    this.consoleErrors = [];
    this.pageErrors = [];
    return out;
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.page.close();
  }
}

let shots = 0;

/** Saves a full-page screenshot into the artefact dir, numbered in the order taken. */
export async function screenshot(page: Page, suite: string, name: string): Promise<string> {
  mkdirSync(env.artifacts, { recursive: true });
  shots++;
  const file = join(env.artifacts, `${suite}-${String(shots).padStart(2, "0")}-${name.replace(/[^a-z0-9]+/gi, "-")}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/**
 * Ordered steps of one test (subtests), each ending with a screenshot of `pages` and a check
 * that they recorded no problem. After a failed step the rest are skipped: they would fail
 * for the first one's reason.
 */
export class Steps {
  private broken: string | undefined;
  readonly pages: Watched[] = [];

  constructor(
    private t: TestContext,
    private suite: string,
  ) {}

  watch(w: Watched): Watched {
    this.pages.push(w);
    return w;
  }

  async step(name: string, fn: () => Promise<void>): Promise<void> {
    await this.t.test(name, async (st) => {
      if (this.broken) {
        st.skip(`after the failed step "${this.broken}"`);
        return;
      }
      let error: unknown;
      try {
        await fn();
      } catch (e) {
        error = e;
      }
      const open = this.pages.filter((w) => !w.page.isClosed());
      for (const w of open) {
        await screenshot(w.page, this.suite, error ? `FAILED-${name}` : name).catch(() => undefined);
      }
      const problems = this.pages.flatMap((w) => w.problems().map((p) => `${p} [page ${w.page.url()}]`));
      for (const w of this.pages) w.clearExpected();
      if (error || problems.length) this.broken = name;
      if (error) throw error;
      if (problems.length) throw new Error(`the page had problems:\n  ${problems.join("\n  ")}`);
    });
  }
}

/** A new page in `context`, recorded. */
export async function watchedPage(context: BrowserContext): Promise<Watched> {
  const page = await context.newPage();
  const w = new Watched(page);
  await w.watchStreams(await context.newCDPSession(page));
  return w;
}

/** Waits until nothing on the page says it is loading (`aria-busy="true"`). */
export async function settled(page: Page): Promise<void> {
  await page.waitForFunction(() => document.querySelector('[aria-busy="true"]') === null, undefined, {
    timeout: PAGE_TIMEOUT,
  });
}

/** The dashboard's URL for `path`. */
export function url(path: string): string {
  return new URL(path, env.api).toString();
}

/** The app's URL as the gateway routes it (a name under .localhost resolves to loopback). */
export function appUrl(service: string, path = "/"): string {
  return `http://${service}.localhost:${env.gatewayPort}${path}`;
}

/** One GET to 127.0.0.1:`port` from outside the browser, with `headers`: status and body. */
export function get(port: number, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: "127.0.0.1", port, path, headers, timeout: 30_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${path} on port ${port}: no answer within 30 s`)));
    req.on("error", reject);
    req.end();
  });
}

/** One GET to the app through the gateway, from outside the browser. */
export function getApp(service: string, path: string): Promise<{ status: number; body: string }> {
  return get(env.gatewayPort, path, { host: `${service}.localhost:${env.gatewayPort}` });
}

/** Signs in on the login page the browser is on, with `token`. */
export async function signIn(page: Page, token: string): Promise<void> {
  await page.getByLabel("API token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** A word no other run uses. */
export function unique(tag: string): string {
  return `${tag}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}
