'use strict';
// Node.js + ws echo with per-message deflate (ws's defaults: context
// takeover, zlib's default level, threshold 1024 B): `node node-ws.js PORT`.
// The bench kit's peer (../shared/bench/peers/node-ws) with its deflate on.
const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: true, clientTracking: false });
const server = http.createServer((req, res) => {
  res.writeHead(426);
  res.end();
});
server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
});
server.listen(port, '127.0.0.1', () => console.error(`node-ws deflate on 127.0.0.1:${port}`));
