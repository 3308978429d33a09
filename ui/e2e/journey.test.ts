// A person's first session with the dashboard, in order, on one server and one deploy: sign
// in, deploy examples/flask-hello from Manual Deploy and watch its build, open the app, set an
// env variable, redeploy and roll back, follow the logs, check the pages at a phone's width,
// delete the service.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import {
  BUILD_TIMEOUT,
  PAGE_TIMEOUT,
  Steps,
  type Watched,
  appUrl,
  env,
  getApp,
  launch,
  settled,
  signIn,
  unique,
  url,
  watchedPage,
} from "./fixture.ts";

let browser: Browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** The top bar's navigation (the services page has its own "Manual Deploy" link too). */
function topBar(page: Page) {
  return page.getByRole("navigation", { name: "Main" });
}

/** The deployment ids shown in the deployments table, in the page's order. */
/** A page on the app's own origin, whose favicon the browser asks for by itself: flask-hello
 * has none, and its 404 is the app's answer, not the dashboard's failure. */
async function appPage(steps: Steps, context: BrowserContext, service: string): Promise<Watched> {
  const app = steps.watch(await watchedPage(context));
  const favicon = appUrl(service, "/favicon.ico").replace(/[.]/g, "\\.");
  app.expect(404, new RegExp(`^${favicon}$`), "the browser's own favicon request");
  return app;
}

async function deploymentIds(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const ids = new Set<string>();
    for (const row of document.querySelectorAll("table tr")) {
      for (const m of (row as HTMLElement).innerText.matchAll(/\bd-[0-9a-f]{6,}\b/g)) ids.add(m[0]);
    }
    return [...ids];
  });
}

/** The text of the deployments table's row that shows deployment `id`. */
function row(page: Page, id: string) {
  return page.getByRole("row").filter({ hasText: id });
}

/** Waits until the row of deployment `id` shows `state` as a word of its own. */
async function waitForState(page: Page, id: string, state: string, timeout: number): Promise<void> {
  const word = new RegExp(`\\b${state}\\b`);
  const deadline = Date.now() + timeout;
  let last = "";
  while (Date.now() < deadline) {
    last = (await row(page, id).first().innerText({ timeout: PAGE_TIMEOUT }).catch(() => "")) || last;
    if (word.test(last)) return;
    if (/\bfailed\b/.test(last)) {
      const log = await page.getByLabel("Build log").innerText().catch(() => "");
      assert.fail(`deployment ${id} failed: ${last}\nbuild log:\n${log.slice(-3000)}`);
    }
    await page.waitForTimeout(250);
  }
  assert.fail(`deployment ${id} did not become ${state} within ${timeout / 1000} s; its row: ${last}`);
}

test("a first session: deploy, open, configure, redeploy, roll back, logs, delete", { timeout: 30 * 60_000 }, async (t) => {
  const steps = new Steps(t, "journey");
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const w = steps.watch(await watchedPage(context));
  const page = w.page;
  const name = unique("e2e").toLowerCase();
  const greeting = unique("hi-from-the-dashboard");
  let first = "";
  let second = "";

  await steps.step("sign in", async () => {
    // Without a session the page's first API call is answered 401: that is how it knows.
    w.expect(401, /\/v1\//, "no session yet");
    await page.goto(url("/"));
    await page.waitForURL(/\/login(\?|$)/);
    await signIn(page, env.token);
    await page.waitForURL((u) => u.pathname === "/");
    await settled(page);
    await topBar(page).getByRole("link", { name: "Services" }).waitFor();
    await topBar(page).getByRole("link", { name: "Manual Deploy" }).waitFor();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
  });

  await steps.step("deploy flask-hello from Manual Deploy and watch the build log stream", async () => {
    await topBar(page).getByRole("link", { name: "Manual Deploy" }).click();
    await page.waitForURL((u) => u.pathname === "/new");
    await settled(page);
    await page.getByLabel("Source").fill(env.app);
    await page.getByLabel("Service name").fill(name);
    await page.getByRole("button", { name: "Deploy" }).click();
    await page.waitForURL((u) => u.pathname === `/services/${name}/deployments` && u.searchParams.has("deployment"));
    first = new URL(page.url()).searchParams.get("deployment") ?? "";
    assert.match(first, /^d-/);
    const log = page.getByLabel("Build log");
    await log.waitFor();
    // Lines must show while the deployment is still being built, not only once it is over.
    const deadline = Date.now() + BUILD_TIMEOUT;
    let streamedWhileRunning = 0;
    let state = "";
    while (Date.now() < deadline) {
      state = await row(page, first).first().innerText().catch(() => "");
      const lines = (await log.innerText().catch(() => "")).split("\n").filter((l) => l.trim()).length;
      if (/\b(queued|fetching|building|starting)\b/.test(state) && lines > streamedWhileRunning) streamedWhileRunning = lines;
      if (/\b(live|failed)\b/.test(state)) break;
      await page.waitForTimeout(250);
    }
    await waitForState(page, first, "live", 1000);
    assert.ok(streamedWhileRunning >= 3, `the build log showed ${streamedWhileRunning} line(s) while the deployment ran`);
    // To the end: the deployment's last line, that it is live.
    await log.getByText(`deployment ${first} is live at`).first().waitFor({ timeout: PAGE_TIMEOUT });
  });

  await steps.step("open the app's URL from the overview and read its answer", async () => {
    await page.getByRole("link", { name: "Overview" }).click();
    await page.waitForURL((u) => u.pathname === `/services/${name}`);
    await settled(page);
    const link = page.getByRole("link", { name: appUrl(name) });
    assert.equal(await link.getAttribute("href"), appUrl(name));
    assert.match(await page.locator("main").innerText(), new RegExp(first));
    const app = await appPage(steps, context, name);
    await app.page.goto(appUrl(name));
    assert.match(await app.page.locator("body").innerText(), /Hello from Flask on Hoist!/);
    await app.close();
  });

  await steps.step("set an env variable in Environment and see the app answer with it", async () => {
    await page.getByRole("link", { name: "Environment" }).click();
    await page.waitForURL((u) => u.pathname === `/services/${name}/env`);
    await settled(page);
    await page.getByLabel("Name", { exact: true }).fill("GREETING");
    await page.getByLabel("Value", { exact: true }).fill(greeting);
    await page.getByRole("button", { name: "Save" }).click();
    await page
      .getByRole("status")
      .filter({ hasText: /Applied: \d+ instance\(s\) replaced/ })
      .waitFor({ timeout: 2 * 60_000 });
    // The table shows the name, and not the value until asked.
    const varRow = page.getByRole("row").filter({ hasText: "GREETING" });
    await varRow.waitFor();
    assert.doesNotMatch(await varRow.innerText(), new RegExp(greeting));
    const app = await appPage(steps, context, name);
    await app.page.goto(appUrl(name, "/info"));
    const info = JSON.parse(await app.page.locator("body").innerText()) as { greeting: string };
    assert.equal(info.greeting, greeting);
    await app.close();
  });

  await steps.step("redeploy, then roll back to the first deployment", async () => {
    await page.getByRole("link", { name: "Deployments" }).click();
    await page.waitForURL((u) => u.pathname === `/services/${name}/deployments`);
    await settled(page);
    await page.getByRole("button", { name: "Redeploy" }).click();
    const deadline = Date.now() + PAGE_TIMEOUT;
    while (Date.now() < deadline && !second) {
      second = (await deploymentIds(page)).find((id) => id !== first) ?? "";
      if (!second) await page.waitForTimeout(200);
    }
    assert.ok(second, "no new deployment showed in the table after Redeploy");
    await waitForState(page, second, "live", BUILD_TIMEOUT);
    await waitForState(page, first, "superseded", PAGE_TIMEOUT);
    await row(page, first).getByRole("button", { name: "Rollback" }).click();
    await waitForState(page, first, "live", 2 * 60_000);
    await waitForState(page, second, "superseded", PAGE_TIMEOUT);
    // The variable set earlier is the service's: it survives both.
    const info = JSON.parse((await getApp(name, "/info")).body) as { greeting: string };
    assert.equal(info.greeting, greeting);
  });

  await steps.step("follow the logs and see a request's access line appear", async () => {
    await page.getByRole("link", { name: "Logs" }).click();
    await page.waitForURL((u) => u.pathname === `/services/${name}/logs`);
    await page.getByRole("status").filter({ hasText: "Following" }).waitFor();
    const probe = unique("probe");
    const res = await getApp(name, `/?e2e=${probe}`);
    assert.equal(res.status, 200);
    await page
      .getByLabel("Log lines")
      .locator(".log-line")
      .filter({ hasText: `GET /?e2e=${probe} 200` })
      .waitFor({ timeout: 30_000 });
    // A view that follows shows its newest line: it is scrolled to the end (a full-page
    // screenshot draws inner scrollers from their top, so the picture cannot tell).
    const [top, height, client] = await page.getByLabel("Log lines").evaluate((e) => [e.scrollTop, e.scrollHeight, e.clientHeight]);
    assert.ok(height - top - client <= 24, `the followed view is scrolled to its end (${top} + ${client} of ${height})`);
  });

  await steps.step("every page has no horizontal overflow at 390 px", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    const paths = ["/", "/new", ...["", "/deployments", "/logs", "/env", "/metrics", "/settings"].map((p) => `/services/${name}${p}`)];
    const overflowing: string[] = [];
    for (const path of paths) {
      await page.goto(url(path));
      await settled(page);
      const wide = await page.evaluate(() => {
        const width = document.documentElement.clientWidth;
        if (document.documentElement.scrollWidth <= width) return [];
        return [...document.querySelectorAll("body *")]
          .filter((el) => el.getBoundingClientRect().right > width + 1)
          .slice(0, 5)
          .map((el) => `${el.tagName.toLowerCase()}${el.className ? "." + String(el.className).split(" ").join(".") : ""}`);
      });
      if (wide.length) overflowing.push(`${path}: ${wide.join(", ")}`);
    }
    await page.setViewportSize({ width: 1280, height: 900 });
    assert.deepEqual(overflowing, [], "pages wider than 390 px");
  });

  await steps.step("delete the service by typing its name, and see it gone from /", async () => {
    await page.goto(url(`/services/${name}/settings`));
    await settled(page);
    await page.getByRole("button", { name: "Delete service" }).click();
    const dialog = page.getByRole("dialog");
    const confirm = dialog.getByLabel(`Type ${name} to confirm`);
    const del = dialog.getByRole("button", { name: "Delete", exact: true });
    await confirm.fill(name.slice(0, -1));
    assert.equal(await del.isDisabled(), true, "Delete is enabled before the whole name is typed");
    await confirm.fill(name);
    await del.click();
    await page.waitForURL((u) => u.pathname === "/");
    await settled(page);
    await page.getByRole("link", { name, exact: true }).waitFor({ state: "detached" });
    assert.equal(await page.getByRole("link", { name, exact: true }).count(), 0);
    const gone = await getApp(name, "/");
    assert.equal(gone.status, 404, `the deleted service's URL answered ${gone.status}`);
  });

  for (const p of steps.pages) if (!p.page.isClosed()) await p.close();
  await context.close();
});
