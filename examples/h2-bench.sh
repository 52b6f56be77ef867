#!/usr/bin/env bash
# WebSockets over HTTP/2 against HTTP/1.1, measured alike: one client
# (`h2-load`, since the load kit's wsload speaks HTTP/1.1 only) against
# wsway's bench-server (HTTP/2 on) over both, and tokio-tungstenite's
# peer over HTTP/1.1, interleaved REPEAT times; prints a Markdown table of
# medians with ratios against tokio-tungstenite. Pinned like run.sh: the
# server on CPU 0 with one tokio worker, the load on CPU 1.
#
#   examples/h2-bench.sh [REPEAT] [h2-load options...]
#   (from the repository root, after
#    cargo build --release -p examples --bin bench-server --bin h2-load
#    and ../shared/bench/run.sh having built its peers once)
set -euo pipefail
repeat=${1:-3}
shift || true
opts=("$@")
[ ${#opts[@]} -gt 0 ] || opts=(--conns 5 --streams 10 --window 16 --seconds 5)
peer=../shared/bench/peers/rust/target/release/peer-tokio-tungstenite
bin=./target/release
out=$(mktemp)
port=19500

run() { # NAME MODE COMMAND...
  local name=$1 mode=$2; shift 2
  port=$((port + 1))
  TOKIO_WORKER_THREADS=1 setsid taskset -c 0 "$@" "$port" >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    ss -ltn "sport = :$port" | grep -q LISTEN && break
    sleep 0.1
  done
  local line
  line=$(taskset -c 1 "$bin/h2-load" "$port" "$pid" $mode "${opts[@]}")
  kill -- -"$pid" 2>/dev/null || kill "$pid"
  wait "$pid" 2>/dev/null || true
  echo "{\"name\":\"$name\",${line#\{}" >>"$out"
  echo "[h2-bench] $name: $line" >&2
}

for _ in $(seq "$repeat"); do
  run "tokio-tungstenite, HTTP/1.1" --h1 "$peer"
  run "wsway, HTTP/1.1" --h1 "$bin/bench-server" --http2 --port
  run "wsway, HTTP/2" "" "$bin/bench-server" --http2 --port
done

python3 - "$out" "${opts[*]}" <<'EOF'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault(r["name"], []).append(r)
med = lambda rs, k: statistics.median(r[k] for r in rs)
base = rows["tokio-tungstenite, HTTP/1.1"]
b_eff, b_tp = med(base, "msgs_per_server_cpu_s"), med(base, "msgs_per_s")
print(f"### echo over HTTP/2 and HTTP/1.1 ({sys.argv[2]}, 32 B text, median of {len(base)})\n")
print("| server | sockets / TCP connections | msgs/s | server CPU-s | msgs/server-CPU-s | efficiency × vs tokio-tungstenite | throughput × |")
print("|---|---|---|---|---|---|---|")
for name, rs in rows.items():
    eff, tp = med(rs, "msgs_per_server_cpu_s"), med(rs, "msgs_per_s")
    print(f"| {name} | {rs[0]['sockets']} / {rs[0]['tcp_connections']} | {tp:.0f} | {med(rs, 'server_cpu_s'):.2f} | {eff:.0f} | {eff / b_eff:.2f} | {tp / b_tp:.2f} |")
EOF
rm -f "$out"
