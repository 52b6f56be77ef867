// Bun.serve echo with per-message deflate: `bun bun.js PORT shared|dedicated`.
// The bench kit's peer (../shared/bench/peers/bun) with its deflate on.
const port = Number(process.argv[2]);
const mode = process.argv[3] || 'shared';
Bun.serve({
  hostname: '127.0.0.1',
  port,
  fetch(req, server) {
    if (server.upgrade(req)) return undefined;
    return new Response('websocket upgrade required', { status: 426 });
  },
  websocket: {
    perMessageDeflate: { compress: mode, decompress: mode },
    message(ws, message) {
      ws.send(message);
    },
  },
});
console.error(`bun deflate (${mode}) on 127.0.0.1:${port}`);
