"""Holds the admin page's stream open on 127.0.0.1:PORT, as an open page
would, reading (and dropping) its snapshots: what BENCHMARKS.md's "the
admin page, watched" rows run beside the server. Standard library only.

Usage: WSWAY_ADMIN_KEY=... python3 watch_admin.py PORT"""
import base64, os, re, socket, sys, time

port, key = int(sys.argv[1]), os.environ["WSWAY_ADMIN_KEY"]
for _ in range(300):  # the server may still be starting
    try:
        page = socket.create_connection(("127.0.0.1", port))
        break
    except OSError:
        time.sleep(0.1)
auth = base64.b64encode(b"bench:" + key.encode()).decode()
page.sendall(f"GET /admin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n".encode())
body = b""
while chunk := page.recv(65536):
    body += chunk
token = re.search(rb'name="wsway-token" content="([^"]+)"', body).group(1).decode()
stream = socket.create_connection(("127.0.0.1", port))
stream.sendall((f"GET /admin/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                f"Sec-WebSocket-Protocol: wsway.admin, bearer.{token}\r\n\r\n").encode())
assert stream.recv(4096).startswith(b"HTTP/1.1 101"), "the stream did not open"
while stream.recv(65536):
    pass
