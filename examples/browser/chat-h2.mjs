// The chat over https with HTTP/2: both pages load over h2 and their
// WebSockets open as extended CONNECT streams on that connection (the
// server counts them; see examples/tests/browser.rs), and chat as over
// HTTP/1.1. Usage: node chat-h2.mjs https://localhost:PORT
import assert from "node:assert/strict";
import { check, open, say, waitForLine } from "./lib.mjs";

const base = process.argv[2];
if (!base) throw new Error("usage: node chat-h2.mjs https://localhost:PORT");
const { browser, joinAs } = await open(base, { https: true });

try {
  const ann = await joinAs("ann");
  const bob = await joinAs("bob");
  for (const page of [ann, bob]) {
    const protocol = await page.evaluate(() => performance.getEntriesByType("navigation")[0].nextHopProtocol);
    assert.equal(protocol, "h2", "the page loaded over HTTP/2");
  }
  await waitForLine(ann, "bob joined");
  check("both pages load over HTTP/2, connect and join the room");

  await say(ann, "hello over h2");
  await waitForLine(bob, "ann: hello over h2");
  await say(bob, "hi ann");
  await waitForLine(ann, "bob: hi ann");
  check("the pages chat");
} finally {
  await browser.close();
}
