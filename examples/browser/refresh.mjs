// A chat page whose tokens last 6 s keeps one socket for 20 s: the server
// asks for a fresh token before each expires, wsway.js gets one from the
// page's token function (POST /token) and hands it over on the open
// socket, and the page sends and receives throughout.
// Usage: node refresh.mjs http://127.0.0.1:PORT (a chat with 6 s tokens;
// started by examples/tests/browser.rs).
import assert from "node:assert/strict";
import { check, logLines, open, say, waitForLine } from "./lib.mjs";

const base = process.argv[2];
if (!base) throw new Error("usage: node refresh.mjs http://127.0.0.1:PORT");
const { browser, joinAs } = await open(base);

try {
  const sockets = [];
  let renewals = 0;
  const ann = await joinAs("ann", {
    onPage: (page) => page.on("websocket", (ws) => {
      sockets.push(ws);
      ws.on("framesent", (f) => {
        if (String(f.payload).includes('"wsway:refresh"')) renewals += 1;
      });
    }),
  });
  const started = Date.now();
  let n = 0;
  while (Date.now() - started < 20_000) {
    n += 1;
    await say(ann, `line ${n}`);
    await waitForLine(ann, `ann: line ${n}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const lines = (await logLines(ann)).filter((l) => l.startsWith("ann: line "));
  assert.deepEqual(lines, Array.from({ length: n }, (_, i) => `ann: line ${i + 1}`), "every line once, in order");
  check(`${n} lines sent and received over 20 s, in order`);

  assert.equal(sockets.length, 1, "one socket for the whole time");
  assert.ok(!sockets[0].isClosed(), "the socket is still open");
  assert.ok(!(await logLines(ann)).includes("reconnected"), "no reconnect");
  assert.equal(await ann.$eval("#status", (s) => s.textContent), "in room lobby as ann");
  // 6 s tokens, asked for 5 s before their end: one renewal a second or so.
  assert.ok(renewals >= 5, `${renewals} renewals in 20 s`);
  check(`one socket throughout, its 6 s token renewed ${renewals} times in place`);
} finally {
  await browser.close();
}
