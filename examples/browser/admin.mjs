// The admin page of two chat processes under load, in headless Chromium.
// Usage: node admin.mjs http://127.0.0.1:PORT KEY SCREENSHOT EXPECTED
// EXPECTED (JSON): {"total", "perNode": [fewer, more], "inRate", "outRateOfFewer",
// "tolerance", "user", "code"}. Started by examples/tests/admin_browser.rs,
// which made the connections and sends the load. One line per check.
import assert from "node:assert/strict";
import { check, launch } from "./lib.mjs";

const [base, key, screenshot, expectedJson] = process.argv.slice(2);
if (!expectedJson) throw new Error("usage: node admin.mjs BASE KEY SCREENSHOT EXPECTED");
const expected = JSON.parse(expectedJson);
const browser = await launch();

/// What the page shows now: figures and each node's row.
const shown = (page) => page.evaluate(() => ({
  total: Number(document.getElementById("connections").dataset.value),
  inRate: Number(document.getElementById("in-rate").dataset.value),
  outRate: Number(document.getElementById("out-rate").dataset.value),
  nodes: [...document.querySelectorAll("#nodes tbody tr")].map((r) => ({
    connections: Number(r.dataset.connections),
    cells: [...r.cells].map((c) => c.textContent),
  })),
  status: document.getElementById("status").textContent,
  error: document.getElementById("error").textContent,
}));

/// Waits until `ok(shown)` holds, or fails with what the page showed.
async function until(page, what, ok, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await shown(page);
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`${what}: the page showed ${JSON.stringify(last)}`);
}

const near = (value, want) => Math.abs(value - want) <= want * expected.tolerance;

try {
  // (A page would prompt for the key; headless, the browser's own client
  // asks instead.)
  const refused = await browser.newContext();
  const response = await refused.request.get(base + "/admin");
  assert.equal(response.status(), 401, "without the key the page is refused");
  assert.match(response.headers()["www-authenticate"] ?? "", /^Basic /);
  check("without the key the page is refused");

  const context = await browser.newContext({ httpCredentials: { username: "ops", password: key } });
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`[admin page error] ${e.message}`));
  await page.goto(base + "/admin");
  await until(page, "the stream going live", (s) => s.status === "live");
  check("the page opens with the key and its stream goes live");

  await until(page, "the connections the test made", (s) =>
    s.total === expected.total
    && s.nodes.map((n) => n.connections).sort((a, b) => a - b).join() === expected.perNode.join());
  check("the connection count, in all and on each node, is what the test made");

  const rates = await until(page, "the rates the test sends", (s) => {
    const fewer = s.nodes.find((n) => n.connections === expected.perNode[0]);
    return near(s.inRate, expected.inRate) && fewer && near(Number(fewer.cells[3]), expected.outRateOfFewer);
  });
  check(`messages in/s (${rates.inRate.toFixed(1)}) and the other node's out/s match the load`);

  // The chart has something drawn on it by now.
  const drawn = await page.evaluate(() => {
    const c = document.getElementById("chart");
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    return data.some((v, i) => i % 4 === 3 && v > 0);
  });
  assert.ok(drawn, "the chart is drawn");
  check("the chart is drawn");

  await page.selectOption("#disconnect-kind", "user");
  await page.fill("#disconnect-target", expected.user);
  await page.fill("#disconnect-code", String(expected.code));
  await page.fill("#disconnect-reason", "banned by an operator");
  await page.click("#disconnect-button");
  await page.waitForFunction(() => document.getElementById("reply").textContent.startsWith("closing"),
    null, { timeout: 10_000 });
  await until(page, "the user's socket gone", (s) => s.total === expected.total - 1);
  check("the disconnect button closes the user's socket, and the count follows");

  // The room's members, then the picture: the drop on the chart, the close
  // by its code, the presence list with its buttons.
  await page.fill("#presence-topic", "room:load");
  await page.click("#presence-form button");
  await page.waitForFunction(() => document.querySelectorAll("#presence tbody tr").length > 0
    && document.querySelector("#closes tbody tr"), null, { timeout: 10_000 });
  await page.screenshot({ path: screenshot, fullPage: true });
  check("the room's presence and the close by code show; a screenshot is kept");
} finally {
  await browser.close();
}
