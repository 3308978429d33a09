// Who gets in: a wrong token gets a clear message, a page opened without a session leads to
// /login (and back to it after sign-in), and sign-out ends the session.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { Browser } from "playwright-core";
import { Steps, env, get, launch, settled, signIn, url, watchedPage } from "./fixture.ts";

let browser: Browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test("sign-in: a wrong token, pages without a session, sign-out", { timeout: 5 * 60_000 }, async (t) => {
  const steps = new Steps(t, "access");
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const w = steps.watch(await watchedPage(context));
  const page = w.page;

  await steps.step("a wrong token gets a message saying it is not valid", async () => {
    w.expect(401, /\/v1\/session$/, "the wrong token, and the check for a session");
    await page.goto(url("/login"));
    await signIn(page, "not-the-token");
    // The message is the page's alert, or the token field's own error (the server names the
    // field): either way one a screen reader announces with the field.
    await page.getByText(/not valid/).first().waitFor();
    const described = await page.getByLabel("API token").evaluate((el) =>
      (el.getAttribute("aria-describedby") ?? "")
        .split(/\s+/)
        .map((id) => (id ? document.getElementById(id)?.textContent ?? "" : ""))
        .join(" "),
    );
    const alerts = (await page.getByRole("alert").allInnerTexts()).join(" ");
    const message = `${described} ${alerts}`;
    assert.match(message, /not valid/, "no alert or field error says the token is not valid");
    assert.match(message, /admin-token/, "the message does not say where the admin token is");
    assert.equal(new URL(page.url()).pathname, "/login");
    // The login page fits a phone's width too.
    const fits = await page.evaluate(() => document.documentElement.scrollWidth <= document.documentElement.clientWidth);
    assert.ok(fits, "the login page is wider than 390 px");
  });

  await steps.step("every page without a session leads to /login", async () => {
    w.expect(401, /\/v1\//, "no session");
    const paths = [
      "/",
      "/new",
      "/services/x",
      "/services/x/deployments",
      "/services/x/logs",
      "/services/x/env",
      "/services/x/metrics",
      "/services/x/settings",
    ];
    for (const path of paths) {
      await page.goto(url(path));
      await page.waitForURL((u) => u.pathname === "/login");
      const next = new URL(page.url()).searchParams.get("next");
      // Back to where it was after sign-in (`/` is where sign-in goes anyway).
      assert.equal(next ?? "/", path, `${path} led to /login with next=${next}`);
      await page.getByLabel("API token").waitFor();
    }
  });

  await steps.step("signing in goes back to the page asked for", async () => {
    w.expect(401, /\/v1\//, "no session yet");
    await page.goto(url("/new"));
    await page.waitForURL((u) => u.pathname === "/login");
    await signIn(page, env.token);
    await page.waitForURL((u) => u.pathname === "/new");
    await settled(page);
    await page.getByLabel("Source").waitFor();
  });

  await steps.step("sign-out ends the session on the server", async () => {
    // The cookie as the browser holds it now, to replay after sign-out.
    const cookie = (await context.cookies(env.api)).find((c) => c.name === "hoist_session");
    assert.ok(cookie, "no hoist_session cookie after sign-in");
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, "Strict");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL((u) => u.pathname === "/login");
    w.expect(401, /\/v1\//, "signed out");
    await page.goto(url("/"));
    await page.waitForURL((u) => u.pathname === "/login");
    const replayed = await get(Number(new URL(env.api).port), "/v1/session", { cookie: `hoist_session=${cookie.value}` });
    assert.equal(replayed.status, 401, "the session still works after sign-out");
  });

  for (const p of steps.pages) if (!p.page.isClosed()) await p.close();
  await context.close();
});
