// A permessage-deflate echo load: `node load.mjs URL PID [--conns 50]
// [--window 4 | --rate R] [--seconds 5] [--idle 1000]`. Prints one JSON
// line.
//
// First the memory phase: `--idle` connections each send one message and
// read its echo (so every compressor a mode makes is made), then the
// server's RSS growth is divided among them. Then the echo phase: `--conns`
// connections keep `--window` messages in flight for `--seconds` (or,
// with `--rate`, send R messages per second between them, so that every
// server is measured at the same load); every reply is compared with what
// was sent. The client offers what browsers
// offer (`permessage-deflate; client_max_window_bits`) and compresses its
// own messages too, so the server inflates as much as it deflates.
//
// Messages are JSON pages of chat lines (about 1.3 KB, every one
// different), above every server's default threshold (ws: 1024 B).
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';

const args = process.argv.slice(2);
const url = args[0];
const pid = Number(args[1]);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? def : Number(args[i + 1]);
};
const conns = opt('conns', 50);
const window = opt('window', 4);
const seconds = opt('seconds', 5);
const idle = opt('idle', 1000);
const rate = opt('rate', 0);

const TICK = 100; // clock ticks per second (/proc/PID/stat)
const cpu = () => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK; // utime + stime
};
const rssKib = () =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

const WORDS = ('the a room deploy tonight release build test green red merge review ' +
  'coffee lunch meeting later thanks sure okay looks good ship it broken fixed ' +
  'server client latency memory socket topic message history replay node redis')
  .split(' ');
let seed = 12345;
const rand = (n) => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
};
const USERS = ['ada', 'grace', 'linus', 'barbara', 'ken', 'dennis', 'margaret', 'alan'];
function page(seq) {
  const lines = [];
  for (let i = 0; i < 8; i++) {
    const words = [];
    for (let w = 4 + rand(10); w > 0; w--) words.push(WORDS[rand(WORDS.length)]);
    lines.push({
      id: seq * 8 + i,
      room: 'lobby',
      user: USERS[rand(USERS.length)],
      text: words.join(' '),
      ts: 1763800000000 + seq * 1000 + i * 17,
    });
  }
  return JSON.stringify({ event: 'history', seq, lines });
}

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: true });
    ws.once('open', () => {
      if (!ws.extensions.includes('permessage-deflate')) {
        reject(new Error(`${url}: permessage-deflate was not agreed (${ws.extensions || 'none'})`));
      } else resolve(ws);
    });
    ws.once('error', reject);
  });
}

const timeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, r) => setTimeout(() => r(new Error(`timeout: ${what}`)), ms))]);

async function memory() {
  const before = rssKib();
  const sockets = [];
  for (let i = 0; i < idle; i += 100) {
    const batch = await timeout(
      Promise.all(Array.from({ length: Math.min(100, idle - i) }, open)), 30000, 'connect');
    await timeout(Promise.all(batch.map((ws, j) => new Promise((resolve, reject) => {
      const msg = page(i + j);
      ws.once('message', (data) => (data.toString() === msg ? resolve() : reject(new Error('mismatch'))));
      ws.send(msg);
    }))), 30000, 'first echo');
    sockets.push(...batch);
  }
  await new Promise((r) => setTimeout(r, 1000));
  const after = rssKib();
  for (const ws of sockets) ws.terminate();
  return { idle, rss_before_kib: before, rss_after_kib: after, kib_per_conn: (after - before) / idle };
}

async function echo() {
  const sockets = await timeout(Promise.all(Array.from({ length: conns }, open)), 30000, 'connect');
  let seq = 0;
  let replies = 0;
  let payload = 0;
  let mismatches = 0;
  let measuring = false;
  const timers = [];
  for (const ws of sockets) {
    const inflight = [];
    const send = () => {
      const msg = page(seq++);
      inflight.push(msg);
      ws.send(msg);
    };
    ws.on('message', (data) => {
      const want = inflight.shift();
      if (data.toString() !== want) mismatches++;
      if (measuring) {
        replies++;
        payload += 2 * want.length;
      }
      if (!rate) send();
    });
    if (rate) timers.push(setInterval(send, (1000 * conns) / rate));
    else for (let i = 0; i < window; i++) send();
  }
  const wire = () => sockets.reduce((n, ws) => n + ws._socket.bytesRead + ws._socket.bytesWritten, 0);
  await new Promise((r) => setTimeout(r, 1000)); // warm-up
  measuring = true;
  const [c0, w0, t0] = [cpu(), wire(), performance.now()];
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const [c1, w1, t1] = [cpu(), wire(), performance.now()];
  measuring = false;
  timers.forEach(clearInterval);
  for (const ws of sockets) ws.terminate();
  const serverCpu = c1 - c0;
  return {
    conns, window: rate ? null : window, rate: rate || null, seconds,
    msgs: replies,
    msgs_per_s: replies / ((t1 - t0) / 1000),
    server_cpu_s: serverCpu,
    server_cpu_util: serverCpu / ((t1 - t0) / 1000),
    msgs_per_server_cpu_s: replies / serverCpu,
    // Both directions: what the client sent and what came back.
    payload_bytes: payload,
    wire_bytes: w1 - w0,
    wire_per_payload: (w1 - w0) / payload,
    mismatches,
  };
}

try {
  const mem = await memory();
  const load = await echo();
  console.log(JSON.stringify({ url, ...mem, ...load }));
  process.exit(0);
} catch (e) {
  console.error(`load: ${e.message}`);
  process.exit(1);
}
