// What the browser scripts share: headless Chromium (trusting a test
// certificate when asked), signing in to the chat, and reading its log.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

export const check = (name) => console.log(`ok: ${name}`);

/// Launches headless Chromium; `https` accepts the test's self-signed
/// certificate. Fails the run after 90 s instead of hanging CI.
export async function launch({ https = false } = {}) {
  setTimeout(() => {
    console.error("browser test: timed out after 90 s");
    process.exit(2);
  }, 90_000).unref();
  const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  return chromium.launch({
    executablePath,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      ...(https ? ["--ignore-certificate-errors"] : []),
    ],
  });
}

/// Chromium for the chat's pages at `base`, and a way to join as a name.
export async function open(base, { https = false } = {}) {
  const browser = await launch({ https });

  // `onPage` sees the page before it loads (to watch its WebSockets).
  async function joinAs(name, { onPage } = {}) {
    const context = await browser.newContext({ ignoreHTTPSErrors: https });
    const page = await context.newPage();
    page.on("pageerror", (e) => console.error(`[${name} page error] ${e.message}`));
    onPage?.(page);
    await page.goto(base + "/");
    await page.fill("input[name=name]", name);
    await page.fill("input[name=room]", "lobby");
    await page.click("#join button");
    await page.waitForFunction(
      (n) => document.getElementById("status").textContent === `in room lobby as ${n}`,
      name,
      { timeout: 10_000 },
    );
    return page;
  }
  return { browser, joinAs };
}

export const logLines = (page) => page.$$eval("#log p", (ps) => ps.map((p) => p.textContent));

export async function waitForLine(page, text) {
  await page.waitForFunction(
    (t) => [...document.querySelectorAll("#log p")].some((p) => p.textContent === t),
    text,
    { timeout: 10_000 },
  ).catch(async () => {
    assert.fail(`expected the line "${text}", the log shows ${JSON.stringify(await logLines(page))}`);
  });
}

export async function say(page, text) {
  await page.fill("input[name=text]", text);
  await page.click("#say button");
}
