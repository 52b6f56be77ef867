// wsway.js: the browser client for wsway's event layer.
// A plain ES module with no dependencies and no build step. Served by an app
// that calls `app.serve_client("/wsway.js")`; the wire format is in wsway's
// README ("Events").
//
//   import { connect } from "/wsway.js";
//   const socket = connect("/chat/lobby", { token });
//   socket.on("chat:message", (msg) => show(msg));
//   const reply = await socket.emit("chat:send", { text: "hi" });

/** The event layer's subprotocol. */
export const PROTOCOL = "wsway.v1";

/** Characters a subprotocol (an HTTP token) may hold. */
const TOKEN_CHARS = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

/** A failed call: `code` is the server's error code, or `timeout`,
 *  `disconnected` or `closed` from the client itself; `data` is the
 *  payload the server's error carried, if any. Throw one from a listener
 *  to answer a server request with an error. */
export class EventError extends Error {
  constructor(code, message, data) {
    super(message);
    this.name = "EventError";
    this.code = code;
    this.data = data;
  }
}

/** Opens a socket; see `Socket`. */
export function connect(url, options) {
  return new Socket(url, options);
}

/**
 * A connection that reconnects by itself, with exponential backoff.
 *
 * Options:
 * - `token`: a string, or a function returning one (or a promise of one),
 *   asked again before every reconnect and whenever the server asks for
 *   a fresh one before the current one expires (`wsway:refresh`, from a
 *   route behind `Bearer::refresh`): the socket then carries on with the
 *   new token, without a reconnect. It is sent as the subprotocol
 *   `bearer.<token>` when connecting, never in the URL.
 * - `timeout`: milliseconds an `emit` waits for its reply (default 10000).
 * - `reconnect`: whether to reconnect after a drop (default true). A close
 *   with a code from 4000 to 4999 (an app's "go away", such as 4001 for a
 *   revoked session) or 1008 never reconnects.
 * - `minDelay` / `maxDelay`: the backoff range in ms (default 250 / 10000).
 *   The backoff starts over only after a connection has stayed up for
 *   `stableAfter` ms (default 5000), so a server that accepts and drops at
 *   once is not hammered.
 * - Pushes on topics that keep history carry `topic` and `pos`; the last
 *   position per topic is sent on every reconnect (`wsway-resume` in the
 *   URL), so the server replays what was missed, to the same `on`
 *   handlers, once and in order; `position(topic)` reads it. A publish
 *   this client made and was left out of is not replayed to it: the
 *   server tells it the position (`wsway:pos`, kept, not fired). When
 *   that is no longer possible the server sends `wsway:gap` ({topic}):
 *   reload that state.
 * - A close whose reason carries `retry-in=<ms>` (a draining wsway server
 *   sends it, with 1001 or 1012) is followed by one reconnect at a random
 *   moment within that window, so a whole server's clients spread out.
 *
 * Lifecycle events, through `on`: `connect`, `disconnect` ({code, reason}),
 * and `error` (an `EventError` the server sent for no call in particular).
 */
export class Socket {
  constructor(url, options = {}) {
    this.url = toWebSocketUrl(url);
    this.options = { timeout: 10000, reconnect: true, minDelay: 250, maxDelay: 10000, stableAfter: 5000, ...options };
    this.listeners = new Map();
    this.queue = []; // calls waiting for the connection: {id, text}
    this.pending = new Map(); // id -> {resolve, reject, timer, sent}
    this.nextId = 1;
    this.attempt = 0;
    this.openedAt = 0;
    this.positions = new Map(); // topic -> {epoch, offset}: the last push seen
    this.joined = new Set(); // topics joined with `join`, joined again on every reconnect
    this.closed = false;
    this.ws = null;
    checkToken(options.token);
    this.open();
  }

  /** True while the connection is open. */
  get connected() {
    return this.ws !== null && this.ws.readyState === 1;
  }

  /** Calls `fn(data)` for every `event`; returns a function that stops it. */
  on(event, fn) {
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.listeners.get(event)?.delete(fn);
  }

  /** Sends `event` and resolves with the server's reply data, or rejects
   *  with an `EventError`. Queued while (re)connecting.
   *
   *  With `target` (a CSS selector on the event's allow-list on the
   *  server), the reply is an HTML fragment (`{html}`) morphed into that
   *  element: focus, input values and scroll positions survive. A target
   *  the server does not allow rejects with `bad_target`, one missing
   *  from the page with `missing_target`. */
  emit(event, data, { timeout = this.options.timeout, target } = {}) {
    if (this.closed) return Promise.reject(new EventError("closed", "the socket was closed"));
    const id = this.nextId++;
    const reply = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        this.queue = this.queue.filter((q) => q.id !== id);
        reject(new EventError("timeout", `no reply to "${event}" within ${timeout} ms`));
      }, timeout);
      this.pending.set(id, { resolve, reject, timer, sent: false });
      const call = target === undefined ? { event, data, id } : { event, data, id, target };
      this.write(id, JSON.stringify(call));
    });
    return target === undefined ? reply : reply.then((fragment) => render(target, fragment));
  }

  /** Joins `topic` (the server's `on_join` hook decides; another user's
   *  room is always refused) and resolves with `{topic, joined}`, or
   *  rejects with an `EventError` (`forbidden`, say). A joined topic is
   *  joined again after every reconnect; a refusal then fires `error`. */
  async join(topic, options) {
    const reply = await this.emit("wsway:join", { topic }, options);
    this.joined.add(topic);
    return reply;
  }

  /** Leaves a topic joined with `join`; resolves with `{topic, left}`. */
  leave(topic, options) {
    this.joined.delete(topic);
    return this.emit("wsway:leave", { topic }, options);
  }

  /** Where this client stands in `topic`'s history: the `"epoch:offset"`
   *  of the last push seen there (or of its own publish, which the server
   *  tells it as `wsway:pos`), or `undefined`. What a reconnect resumes
   *  from; save it to resume a later session. */
  position(topic) {
    const p = this.positions.get(topic);
    return p && `${p.epoch}:${p.offset}`;
  }

  /** Sends `event` without asking for a reply. Queued while (re)connecting. */
  send(event, data) {
    if (!this.closed) this.write(null, JSON.stringify({ event, data }));
  }

  /** Closes for good: no reconnect; unanswered calls reject with `closed`. */
  close(code = 1000, reason = "") {
    this.closed = true;
    clearTimeout(this.retry);
    if (this.ws) this.ws.close(code, reason);
    this.failPending("closed", "the socket was closed", () => true);
    this.queue = [];
  }

  async open() {
    const protocols = [PROTOCOL];
    try {
      let token = this.options.token;
      if (typeof token === "function") token = await token();
      checkToken(token);
      if (token) protocols.push("bearer." + token);
    } catch (e) {
      this.fire("error", e);
      if (!this.closed) this.scheduleReconnect();
      return;
    }
    if (this.closed) return;
    const ws = new WebSocket(this.resumeUrl(), protocols);
    this.ws = ws;
    ws.onopen = () => {
      this.openedAt = Date.now();
      const queued = this.queue;
      this.queue = [];
      // Joins first, so calls queued meanwhile find the topics in place.
      for (const topic of this.joined) {
        this.emit("wsway:join", { topic }).catch((e) => {
          this.joined.delete(topic);
          this.fire("error", e);
        });
      }
      for (const q of queued) this.transmit(q.id, q.text);
      this.fire("connect");
    };
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      // Calls already sent will never be answered on a new connection.
      this.failPending("disconnected", "the connection dropped before the reply", (p) => p.sent);
      if (this.openedAt && Date.now() - this.openedAt >= this.options.stableAfter) this.attempt = 0;
      this.openedAt = 0;
      const retryIn = retryWindow(e.reason);
      this.fire("disconnect", { code: e.code, reason: e.reason, retryIn });
      const final = (e.code >= 4000 && e.code <= 4999) || e.code === 1008;
      if (!this.closed && this.options.reconnect && !final) this.scheduleReconnect(retryIn);
      else if (final) this.closed = true;
    };
  }

  scheduleReconnect(retryIn) {
    if (retryIn !== undefined) {
      // The server said when to come back: anywhere in its window.
      this.retry = setTimeout(() => this.open(), Math.random() * retryIn);
      return;
    }
    const { minDelay, maxDelay } = this.options;
    const base = Math.min(maxDelay, minDelay * 2 ** this.attempt++);
    const delay = base / 2 + (Math.random() * base) / 2; // jitter spreads a herd of reconnects
    this.retry = setTimeout(() => this.open(), delay);
  }

  /** The URL with the last position of every topic that keeps history
   *  (`wsway-resume`), so the server replays what was missed. */
  resumeUrl() {
    if (this.positions.size === 0) return this.url;
    const u = new URL(this.url);
    const at = {};
    for (const [topic, p] of this.positions) at[topic] = `${p.epoch}:${p.offset}`;
    u.searchParams.set("wsway-resume", JSON.stringify(at));
    return u.href;
  }

  write(id, text) {
    if (this.connected) this.transmit(id, text);
    else this.queue.push({ id, text });
  }

  transmit(id, text) {
    const p = id !== null ? this.pending.get(id) : null;
    if (p) p.sent = true;
    this.ws.send(text);
  }

  receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof msg.event === "string") {
      // A push on a topic that keeps history: remember where we are, and
      // skip anything already seen (a replay never repeats, but be sure).
      if (typeof msg.topic === "string" && typeof msg.pos === "string") {
        const [epoch, offset] = msg.pos.split(":");
        const last = this.positions.get(msg.topic);
        if (last && last.epoch === epoch && Number(offset) <= last.offset) return;
        this.positions.set(msg.topic, { epoch, offset: Number(offset) });
        // Where our own publish went (we were left out of it): kept, not fired.
        if (msg.event === "wsway:pos") return;
      }
      if (typeof msg.id === "number") {
        this.answer(msg);
        return;
      }
      if (msg.event === "wsway:refresh") this.renew();
      if (msg.event === "wsway:render") {
        try {
          render(msg.data?.target, msg.data);
        } catch (e) {
          this.fire("error", e);
        }
      }
      this.fire(msg.event, msg.data);
      return;
    }
    const p = msg.id !== null && msg.id !== undefined ? this.pending.get(msg.id) : undefined;
    if (!p) {
      if (msg.ok === false) this.fire("error", new EventError(msg.error, msg.message, msg.data));
      return;
    }
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.ok) p.resolve(msg.data);
    else p.reject(new EventError(msg.error, msg.message, msg.data));
  }

  /** The server asks for a new token before the current one expires
   *  (`Bearer::refresh`): the `token` function gives it, and the socket
   *  carries on without a reconnect. A string token cannot be renewed:
   *  the server closes with 4001 at its expiry, and the socket stays
   *  closed. A failure fires `error`. */
  async renew() {
    const source = this.options.token;
    if (typeof source !== "function") return;
    try {
      const token = await source();
      checkToken(token);
      await this.emit("wsway:refresh", { token });
    } catch (e) {
      this.fire("error", e);
    }
  }

  /** A server request (`emit_with_ack`): the first listener's return
   *  value (or what its promise resolves to) is the ack; what it throws,
   *  the error. */
  async answer(msg) {
    const [fn] = this.listeners.get(msg.event) ?? [];
    let reply;
    try {
      if (!fn) throw new EventError("unknown_event", `no listener for ${msg.event}`);
      const data = await fn(msg.data);
      reply = { id: msg.id, ok: true, data: data === undefined ? null : data };
    } catch (e) {
      const code = e instanceof EventError ? e.code : "error";
      reply = { id: msg.id, ok: false, error: code, message: String(e?.message ?? e), data: e?.data };
    }
    if (this.ws?.readyState === 1) this.ws.send(JSON.stringify(reply));
  }

  failPending(code, message, which) {
    for (const [id, p] of this.pending) {
      if (!which(p)) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new EventError(code, message));
    }
  }

  fire(event, data) {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        fn(data);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}

/** Morphs a fragment (`{html}`) into the element `target` selects;
 *  returns the fragment. */
function render(target, fragment) {
  const el = typeof target === "string" ? document.querySelector(target) : null;
  if (!el) throw new EventError("missing_target", `no element matches ${JSON.stringify(target)}`);
  if (typeof fragment?.html !== "string") throw new EventError("not_a_fragment", "the reply carries no html");
  morph(el, fragment.html);
  return fragment;
}

/**
 * Makes `element`'s children match `html`, changing the nodes in place
 * rather than replacing them, so that focus, what was typed into inputs,
 * selections and scroll positions survive. Children with an `id` are
 * matched by it (a list can reorder); the others by tag, in order.
 * Inputs the user changed or is focused on keep their value.
 */
export function morph(element, html) {
  const template = document.createElement("template");
  template.innerHTML = html;
  morphChildren(element, template.content);
}

function morphChildren(from, to) {
  const byId = new Map();
  for (const child of from.children) if (child.id) byId.set(child.id, child);
  let cursor = from.firstChild;
  for (const next of [...to.childNodes]) {
    let match = null;
    if (next.nodeType === 1 && next.id) {
      match = byId.get(next.id) ?? null;
      byId.delete(next.id);
    } else if (cursor && sameKind(cursor, next)) {
      match = cursor;
    }
    if (match === null) {
      from.insertBefore(next, cursor);
      continue;
    }
    if (match === cursor) cursor = cursor.nextSibling;
    else from.insertBefore(match, cursor);
    morphNode(match, next);
  }
  while (cursor) {
    const after = cursor.nextSibling;
    from.removeChild(cursor);
    cursor = after;
  }
}

/** Unkeyed nodes match when they are the same kind: text, or the same tag
 *  without an id. */
function sameKind(a, b) {
  if (a.nodeType !== b.nodeType) return false;
  if (a.nodeType !== 1) return true;
  return a.tagName === b.tagName && !a.id && !b.id;
}

function morphNode(from, to) {
  if (from.nodeType !== 1) {
    if (from.nodeValue !== to.nodeValue) from.nodeValue = to.nodeValue;
    return;
  }
  const field = from.tagName === "INPUT" || from.tagName === "TEXTAREA" || from.tagName === "SELECT";
  // What the user typed, or is typing, stays.
  const keepValue = field && (from === document.activeElement || from.value !== from.defaultValue);
  for (const { name } of [...from.attributes]) {
    if (!to.hasAttribute(name) && !(keepValue && name === "value")) from.removeAttribute(name);
  }
  for (const { name, value } of [...to.attributes]) {
    if (keepValue && name === "value") continue;
    if (from.getAttribute(name) !== value) from.setAttribute(name, value);
  }
  if (from.tagName === "TEXTAREA" && keepValue) return;
  morphChildren(from, to);
}

function checkToken(token) {
  if (typeof token === "string" && token && !TOKEN_CHARS.test(token)) {
    throw new Error("wsway.js: a token must be made of HTTP token characters (as JWTs and base64url are)");
  }
}

/** `/chat` → `ws://host/chat` (or `wss:` under https). */
function toWebSocketUrl(url) {
  const base = typeof location !== "undefined" ? location.href : undefined;
  const u = new URL(url, base);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  return u.href;
}

/** The reconnect window a close reason carries (`retry-in=<ms>`), if any. */
function retryWindow(reason) {
  const m = /(?:^|[;\s])retry-in=(\d{1,9})(?:$|[;\s])/.exec(reason || "");
  return m ? Number(m[1]) : undefined;
}
