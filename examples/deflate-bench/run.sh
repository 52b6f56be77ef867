#!/usr/bin/env bash
# The compression table in BENCHMARKS.md: wsway (both compressor modes),
# Bun (both) and Node's ws, each echoing with permessage-deflate, measured
# one after another by load.mjs. Servers on CPU 0, the load on CPU 1.
#   examples/deflate-bench/run.sh [--repeat N] [load.mjs options...]
# Needs a release bench-server (cargo build --release -p examples --bin
# bench-server), node, and the bench kit's Bun (../shared/bench/peers/bun).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bun="$root/../shared/bench/peers/bun/node_modules/.bin/bun"
repeat=1
if [ "${1:-}" = --repeat ]; then repeat=$2; shift 2; fi
[ -d "$here/node_modules/ws" ] || npm install --prefix "$here" --no-audit --no-fund >/dev/null
[ -x "$bun" ] || npm ci --prefix "$root/../shared/bench/peers/bun" --no-audit --no-fund >/dev/null
[ -x "$root/target/release/bench-server" ] || { echo "build bench-server first" >&2; exit 1; }

servers=(
  "wsway-shared|$root/target/release/bench-server \$PORT|/echo/deflate-shared"
  "wsway-dedicated|$root/target/release/bench-server \$PORT|/echo/deflate-dedicated"
  "bun-shared|$bun $here/bun.js \$PORT shared|/"
  "bun-dedicated|$bun $here/bun.js \$PORT dedicated|/"
  "node-ws|node $here/node-ws.js \$PORT|/"
)
out=$(mktemp)
port=19700
for ((r = 0; r < repeat; r++)); do
  for s in "${servers[@]}"; do
    IFS='|' read -r name cmd path <<<"$s"
    port=$((port + 1))
    PORT=$port TOKIO_WORKER_THREADS=1 setsid taskset -c 0 bash -c "exec $cmd" >/dev/null 2>&1 &
    server=$!
    for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
    line=$(taskset -c 1 node "$here/load.mjs" "ws://127.0.0.1:$port$path" "$server" "$@") \
      || { kill -- -"$server" 2>/dev/null; echo "$name: the load failed" >&2; exit 1; }
    kill -- -"$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    echo "{\"server\":\"$name\",${line#\{}" >>"$out"
  done
done
node - "$out" <<'JS'
const rows = require('fs').readFileSync(process.argv[2], 'utf8').trim().split('\n').map(JSON.parse);
const by = new Map();
for (const r of rows) (by.get(r.server) || by.set(r.server, []).get(r.server)).push(r);
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const m = (rs, k) => median(rs.map((r) => r[k]));
const base = m(by.get('node-ws'), 'msgs_per_server_cpu_s');
console.log('| server | msgs/s | server CPU | msgs/server-CPU-s | × vs node-ws | µs server CPU per msg | wire bytes per payload byte | KiB/conn after one message | mismatches |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const [name, rs] of by) {
  const eff = m(rs, 'msgs_per_server_cpu_s');
  console.log(`| ${name}${rs.length > 1 ? ` (median of ${rs.length})` : ''} | ${m(rs, 'msgs_per_s').toFixed(0)} | ${m(rs, 'server_cpu_util').toFixed(2)} | ${eff.toFixed(0)} | ${(eff / base).toFixed(2)} | ${(1e6 / eff).toFixed(1)} | ${m(rs, 'wire_per_payload').toFixed(3)} | ${m(rs, 'kib_per_conn').toFixed(1)} | ${rs.reduce((n, r) => n + r.mismatches, 0)} |`);
}
JS
rm -f "$out"
