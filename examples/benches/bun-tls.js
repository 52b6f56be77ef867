// The load kit's Bun peer (../shared/bench/peers/bun/server.js) for
// `cargo bench --bench wss`: /echo echoes, on a free port, over TLS when
// given `CERT.pem KEY.pem`. Prints `listening on 127.0.0.1:PORT`.
const [cert, key] = process.argv.slice(2);

const server = Bun.serve({
  hostname: '127.0.0.1',
  port: 0,
  ...(cert ? { tls: { cert: Bun.file(cert), key: Bun.file(key) } } : {}),
  fetch(req, server) {
    if (new URL(req.url).pathname !== '/echo') {
      return new Response('not found', { status: 404 });
    }
    if (server.upgrade(req)) return undefined;
    return new Response('websocket upgrade required', { status: 426 });
  },
  websocket: {
    perMessageDeflate: false,
    message(ws, message) {
      ws.send(message);
    },
  },
});

console.log(`listening on 127.0.0.1:${server.port}`);
