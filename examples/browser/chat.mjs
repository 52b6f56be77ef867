// Drives headless Chromium through the chat example and wsway.js.
// Usage: node chat.mjs http://127.0.0.1:PORT
// Started by examples/tests/browser.rs, which serves the chat app plus the
// `/t/events` route these checks use. Prints one line per check; exits
// non-zero on the first failure.
import assert from "node:assert/strict";
import { check, logLines, open, say, waitForLine } from "./lib.mjs";

const base = process.argv[2];
if (!base) throw new Error("usage: node chat.mjs http://127.0.0.1:PORT");
const { browser, joinAs } = await open(base);

try {
  // Two pages chat through the event layer.
  const ann = await joinAs("ann");
  const bob = await joinAs("bob");
  await waitForLine(ann, "bob joined");
  check("each page signs in, connects with its token and joins the room");

  // The member list is an HTML fragment the server renders into #members;
  // the room's name a render the server pushes into #where.
  const listed = (page, names) => page.waitForFunction(
    (n) => [...document.querySelectorAll("#members li")].map((li) => li.textContent).join(",") === n,
    names,
    { timeout: 10_000 },
  ).catch(async () => {
    assert.fail(`expected members ${names}, the page shows ${await page.$eval("#members", (m) => m.outerHTML)}`);
  });
  await listed(ann, "ann,bob");
  await listed(bob, "ann,bob");
  assert.equal(await ann.$eval("#where", (w) => w.innerHTML), "Room <b>lobby</b>");
  check("the member list and the room's name are fragments morphed into the page");

  await say(ann, "hello from ann");
  await waitForLine(ann, "ann: hello from ann");
  await waitForLine(bob, "ann: hello from ann");
  await say(bob, "hi ann");
  await waitForLine(ann, "bob: hi ann");
  await waitForLine(bob, "bob: hi ann");
  // Both lines are on both pages now: they must stand in the same order.
  const said = (lines) => lines.filter((l) => l === "ann: hello from ann" || l === "bob: hi ann");
  assert.deepEqual(said(await logLines(ann)), ["ann: hello from ann", "bob: hi ann"]);
  assert.deepEqual(said(await logLines(bob)), ["ann: hello from ann", "bob: hi ann"]);
  check("messages reach both pages, in the same order on each");

  await say(ann, "   ");
  await waitForLine(ann, "not sent (empty): say something");
  const bobLines = await logLines(bob);
  assert.ok(!bobLines.some((l) => l.includes("not sent")), "a refusal stays with its sender");
  check("a refused message shows its ack's error on the sender's page only");

  await bob.context().close();
  await waitForLine(ann, "bob left");
  check("closing a page announces the leave");

  // The server restarts under the open page: it reconnects by itself into
  // its room, says so, and the user keeps typing.
  await ann.evaluate(() => fetch("/t/restart"));
  await waitForLine(ann, "reconnected");
  await ann.waitForFunction(
    () => document.getElementById("status").textContent === "in room lobby as ann",
    null,
    { timeout: 10_000 },
  );
  await say(ann, "after the restart");
  await waitForLine(ann, "ann: after the restart");
  check("a server restart: the page reconnects into its room by itself and the user keeps typing");

  // wsway.js itself, against /t/events (token "good").
  const results = await ann.evaluate(async () => {
    const { connect, EventError } = await import("/wsway.js");
    const out = {};
    const s = connect("/t/events", { token: "good", timeout: 2000, minDelay: 50 });
    let connects = 0;
    s.on("connect", () => connects++);
    // Emitted before the socket is open: queued, then sent.
    out.queued = await s.emit("echo", { n: 1 });
    out.whoami = await s.emit("whoami");
    out.typed = await s.emit("fail").catch((e) => `${e.name}:${e.code}:${e.message}:${JSON.stringify(e.data)}`);
    // Server requests: the listener's value is the ack, what it throws the error.
    s.on("question", async (n) => {
      if (n < 0) throw new EventError("negative", "no", { n });
      return n * 2;
    });
    const answered = (n) => new Promise((resolve) => {
      const off = s.on("answered", (d) => { off(); resolve(d); });
      s.send("ask", n);
    });
    out.asked = [await answered(21), await answered(-1)];
    out.timeout = await s.emit("slow", 1000, { timeout: 200 }).catch((e) => e.code);
    out.pushed = await new Promise((resolve) => {
      const off = s.on("pushed", (d) => { off(); resolve(d); });
      s.send("push", "ping");
    });
    // The server drops the connection: the call in flight rejects, the
    // client reconnects by itself, and calls work again.
    out.dropped = await s.emit("drop").catch((e) => e.code);
    out.afterReconnect = await s.emit("echo", { n: 2 });
    out.connects = connects;
    s.close();
    out.afterClose = await s.emit("echo", 3).catch((e) => e.code);
    // A bad token never gets a socket.
    out.badToken = await new Promise((resolve) => {
      const bad = connect("/t/events", { token: "bad", reconnect: false });
      bad.on("connect", () => resolve("connected?!"));
      bad.on("disconnect", (d) => resolve(d.code));
    });
    // Refused upgrades (no token: 401, seen as 1006) are retried with
    // growing, jittered delays: base 50 ms doubling to a 400 ms cap.
    out.retryGaps = await new Promise((resolve) => {
      const times = [];
      const r = connect("/t/events", { minDelay: 50, maxDelay: 400 });
      r.on("disconnect", () => {
        times.push(performance.now());
        if (times.length === 6) {
          r.close();
          resolve(times.slice(1).map((t, i) => Math.round(t - times[i])));
        }
      });
    });
    return out;
  });
  assert.deepEqual(results.queued, { n: 1 }, "a call made while connecting is queued and answered");
  assert.equal(results.whoami, "tester", "the token reached the server as the verified identity");
  assert.equal(results.typed, "EventError:nope:said no:[2,3]");
  assert.deepEqual(results.asked, ["42", 'negative:{"n":-1}']);
  assert.equal(results.timeout, "timeout");
  assert.equal(results.pushed, "ping");
  assert.equal(results.dropped, "disconnected");
  assert.deepEqual(results.afterReconnect, { n: 2 });
  assert.equal(results.connects, 2, "one reconnect");
  assert.equal(results.afterClose, "closed");
  assert.equal(results.badToken, 1006);
  // Real timers: each gap is at least its delay's floor (base/2 for bases
  // 50, 100, 200, 400, 400). A timer never fires early, so this holds on
  // any machine; the exact delays and the cap are checked below with
  // setTimeout recorded, not timed.
  const floors = [25, 50, 100, 200, 200];
  assert.ok(results.retryGaps.every((g, i) => g >= floors[i] - 1), `backoff waits: ${results.retryGaps}`);
  check(`wsway.js: queue, token, typed errors with data, server requests, timeout, events, reconnect with backoff, close (${JSON.stringify(results)})`);

  // A close with 4000-4999 (the app's "go away") or 1008 is final: no
  // reconnect, and later calls reject at once with `closed`. Were the client
  // going to reconnect, that call would queue and be answered instead, so the
  // check does not depend on how long it waits; 1011 is the control.
  const finals = await ann.evaluate(async (codes) => {
    const { connect } = await import("/wsway.js");
    const out = [];
    for (const code of codes) {
      const s = connect("/t/events", { token: "good", minDelay: 20, maxDelay: 20, timeout: 5000 });
      let connects = 0;
      s.on("connect", () => connects++);
      const seen = new Promise((resolve) => s.on("disconnect", (d) => resolve(d.code)));
      await s.emit("echo", 0);
      s.send("close", code);
      const closedWith = await seen;
      // A reconnect would have started 20 ms in.
      await new Promise((r) => setTimeout(r, 200));
      const after = await s.emit("echo", 1).catch((e) => e.code);
      out.push({ code, closedWith, connects, after });
      s.close();
    }
    return out;
  }, [4000, 4001, 4999, 1008, 1011]);
  for (const f of finals.slice(0, 4)) {
    assert.deepEqual(f, { code: f.code, closedWith: f.code, connects: 1, after: "closed" }, `close ${f.code} is final`);
  }
  assert.deepEqual(finals[4], { code: 1011, closedWith: 1011, connects: 2, after: 1 }, "1011 reconnects");
  check(`wsway.js: no reconnect after 4000, 4001, 4999 or 1008; 1011 reconnects (${JSON.stringify(finals)})`);

  // A topic that keeps history: what is published while the page is
  // away is replayed when wsway.js reconnects, once and in order, to the
  // same handler; nothing is lost and nothing is reported lost.
  const resumed = await ann.evaluate(async () => {
    const { connect } = await import("/wsway.js");
    const got = [];
    let gaps = 0;
    let connects = 0;
    const s = connect("/t/events", { token: "good", minDelay: 1000, maxDelay: 1000, timeout: 5000 });
    s.on("tick", (n) => got.push(n));
    s.on("wsway:gap", () => gaps++);
    s.on("connect", () => connects++);
    const until = async (n) => {
      for (let i = 0; i < 500 && got.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    };
    await s.emit("echo", 0);
    await fetch("/t/publish?n=3");
    await until(3);
    // Dropped by the server; the reconnect waits 500 ms or more.
    await s.emit("drop").catch(() => {});
    await fetch("/t/publish?n=3");
    await s.emit("echo", 1);
    await fetch("/t/publish?n=3");
    await until(9);
    const at = /^[0-9a-f]+:9$/.test(s.position("t:hist") || "") ? "offset 9" : s.position("t:hist");
    s.close();
    return { got, gaps, connects, at };
  });
  assert.deepEqual(resumed, { got: [1, 2, 3, 4, 5, 6, 7, 8, 9], gaps: 0, connects: 2, at: "offset 9" });
  check(`wsway.js: resumes a topic that keeps history after a drop, nothing lost or repeated (${JSON.stringify(resumed)})`);

  // The token function is asked again before every reconnect: each
  // connection is signed in with the token current at that moment.
  const tokens = await ann.evaluate(async () => {
    const { connect } = await import("/wsway.js");
    let asked = 0;
    const s = connect("/t/events", { token: async () => `good-${++asked}`, minDelay: 20, timeout: 5000 });
    const who = [await s.emit("whoami")];
    for (let i = 0; i < 2; i++) {
      await s.emit("drop").catch(() => {});
      who.push(await s.emit("whoami"));
    }
    s.close();
    return { asked, who };
  });
  assert.deepEqual(tokens, { asked: 3, who: ["1", "2", "3"] });
  check(`wsway.js: the token function is asked before each reconnect (${JSON.stringify(tokens)})`);

  // Fragments: morphed into the target in place (what the user typed, the
  // focus and the scroll position survive); a target off the event's
  // allow-list is refused and the page untouched; server pushes render too.
  // Joins: refused by the app's hook, and made again after a reconnect.
  const fragments = await ann.evaluate(async () => {
    const { connect } = await import("/wsway.js");
    document.body.insertAdjacentHTML("beforeend", '<div id="panel"></div><div id="elsewhere">untouched</div>');
    const s = connect("/t/events", { token: "good", timeout: 5000, minDelay: 20 });
    const out = {};
    await s.emit("panel", null, { target: "#panel" });
    const note = document.getElementById("note");
    note.focus();
    note.value = "typed by the user";
    const scroller = document.getElementById("scroller");
    scroller.scrollTop = 30;
    const reply = await s.emit("panel", null, { target: "#panel" });
    out.reply = reply.html.slice(0, 22);
    out.count = document.getElementById("count").textContent;
    out.sameInput = document.getElementById("note") === note;
    out.value = note.value;
    out.focused = document.activeElement === note;
    out.scroll = document.getElementById("scroller").scrollTop;
    out.refused = await s.emit("panel", null, { target: "#elsewhere" }).catch((e) => e.code);
    out.elsewhere = document.getElementById("elsewhere").textContent;
    out.missing = await s.emit("panel", null, { target: "#absent" }).catch((e) => e.code);
    out.pushed = await new Promise((resolve) => {
      const off = s.on("wsway:render", () => { off(); resolve(document.getElementById("count").textContent); });
      s.send("banner", "pushed <b>");
    });
    out.valueAfterPush = note.value;
    out.joined = await s.join("room:a");
    out.forbidden = await s.join("secret").catch((e) => e.code);
    // Dropped and back: the join is made again before queued calls.
    await s.emit("drop").catch(() => {});
    await s.emit("whoami");
    out.roomed = await new Promise((resolve) => {
      const off = s.on("roomed", (d) => { off(); resolve(d); });
      fetch("/t/room?topic=room:a");
    });
    s.close();
    return out;
  });
  assert.deepEqual(fragments, {
    reply: '<p id="count">render 2',
    count: "render 2",
    sameInput: true,
    value: "typed by the user",
    focused: true,
    scroll: 30,
    refused: "bad_target",
    elsewhere: "untouched",
    missing: "missing_target",
    pushed: "pushed <b>",
    valueAfterPush: "typed by the user",
    joined: { topic: "room:a", joined: true },
    forbidden: "forbidden",
    roomed: "room:a",
  });
  check(`wsway.js: fragments morph into allowed targets only, keeping input, focus and scroll; pushes render; joins survive a reconnect (${JSON.stringify(fragments)})`);

  // The documented defaults, read exactly: a fresh page records the delay
  // wsway.js asks of every setTimeout and fires it at once, with
  // Math.random pinned to 0, 1, 0.5 in turn (the ends of the jitter range).
  const fresh = await (await browser.newContext()).newPage();
  await fresh.goto(base + "/");
  const defaults = await fresh.evaluate(async () => {
    const { connect } = await import("/wsway.js");
    const asked = [];
    const realSetTimeout = window.setTimeout;
    window.setTimeout = (fn, ms) => {
      asked.push(ms);
      return realSetTimeout(fn, 0);
    };
    const randoms = [0, 1, 0.5];
    let r = 0;
    Math.random = () => randoms[r++ % randoms.length];
    // No token: every upgrade is refused (401), so the client keeps retrying.
    const backoff = await new Promise((resolve) => {
      let drops = 0;
      const s = connect("/t/events");
      s.on("disconnect", () => {
        if (++drops === 9) {
          s.close();
          resolve(asked.splice(0));
        }
      });
    });
    const s = connect("/t/events", { token: "good" });
    const slow = await s.emit("slow", 60000).catch((e) => e.code);
    const emitTimeout = asked.splice(0);
    s.close();
    window.setTimeout = realSetTimeout;
    return { backoff, emitTimeout, slow };
  });
  // Short-lived connections do not reset the backoff (two drops in a row
  // wait 250- then 500-based delays), and a drain's close is followed by
  // one reconnect within its retry-in window (random 0.5 of 3000 ms).
  const restarts = await fresh.evaluate(async () => {
    const { connect } = await import("/wsway.js");
    const asked = [];
    const realSetTimeout = window.setTimeout;
    window.setTimeout = (fn, ms) => {
      asked.push(ms);
      // Reconnect delays fire at once; emit timeouts (10 s) stay real.
      return realSetTimeout(fn, ms === 10000 ? ms : 0);
    };
    Math.random = () => 0.5;
    const codes = [];
    const s = connect("/t/events", { token: "good" });
    s.on("disconnect", (d) => codes.push([d.code, d.retryIn ?? null]));
    await s.emit("echo", 0);
    for (let i = 0; i < 2; i++) {
      await s.emit("drop").catch(() => {});
      await s.emit("echo", i);
    }
    s.send("drain");
    await new Promise((resolve) => s.on("connect", resolve));
    await s.emit("echo", 3);
    s.close();
    window.setTimeout = realSetTimeout;
    // What is left once the emit timeouts (10 s each) are set aside.
    return { delays: asked.filter((ms) => ms !== 10000), codes };
  });
  await fresh.context().close();
  assert.deepEqual(restarts.delays, [187.5, 375, 1500], "backoff kept across short connections; drain hint honoured");
  assert.deepEqual(restarts.codes, [[1006, null], [1006, null], [1012, 3000]]);
  check(`wsway.js: backoff resets only after a stable connection; a drain's retry-in spreads the reconnect (${JSON.stringify(restarts)})`);
  // Bases 250 doubling to the 10000 cap; a delay is base/2 + random * base/2.
  assert.deepEqual(defaults.backoff, [125, 500, 750, 1000, 4000, 6000, 5000, 10000], "default backoff 250..10000 ms");
  assert.deepEqual(defaults.emitTimeout, [10000], "default emit timeout 10 s");
  assert.equal(defaults.slow, "timeout");
  check(`wsway.js: default backoff 250 ms doubling to 10 s, emit timeout 10 s (${JSON.stringify(defaults)})`);
} finally {
  await browser.close();
}
