"""A test app with no dependencies: it reports what it can see and do from inside its sandbox."""

import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

HOLD = []


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/":
            self.reply(200, f"probe {os.environ.get('VERSION', 'v1')} {os.environ.get('HOIST_INSTANCE', '')}\n")
        elif url.path == "/spew":
            # A burst of output: n numbered lines as fast as Python writes them.
            n = int(q.get("n", "10000"))
            started = time.monotonic()
            for i in range(n):
                sys.stdout.write(f"spew line {i}\n")
            sys.stdout.flush()
            self.reply(200, f"wrote {n} lines in {(time.monotonic() - started) * 1000:.0f} ms\n")
        elif url.path == "/status":
            self.reply(int(q.get("code", "500")), "as asked\n")
        elif url.path == "/sleep":
            time.sleep(int(q.get("ms", "100")) / 1000)
            self.reply(200, f"slept {os.environ.get('HOIST_INSTANCE', '')}\n")
        elif url.path == "/trickle":
            # A response that streams: a line every `ms`, `n` lines, then the end.
            n, every = int(q.get("n", "10")), int(q.get("ms", "500")) / 1000
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.flush()
            for i in range(n):
                self.wfile.write(f"tick {i}\n".encode())
                self.wfile.flush()
                time.sleep(every)
            self.close_connection = True
        elif url.path == "/threads":
            # Idle threads make the cgroup freezer take longer (each must be stopped).
            n = int(q.get("n", "100"))
            for _ in range(n):
                threading.Thread(target=time.sleep, args=(86400,), daemon=True).start()
            self.reply(200, f"started {n} threads\n")
        elif url.path == "/write":
            try:
                with open(q["path"], "w") as f:
                    f.write("x")
                self.reply(200, "written\n")
            except OSError as e:
                self.reply(200, f"error: {e}\n")
        elif url.path == "/ps":
            pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
            self.reply(200, json.dumps(pids) + "\n")
        elif url.path == "/alloc":
            mb = int(q.get("mb", "1"))
            block = bytearray(mb * 1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
            HOLD.append(block)
            self.reply(200, f"allocated {mb} MB\n")
        elif url.path == "/crash":
            print("crashing on request", flush=True)
            os._exit(3)
        elif url.path == "/upgrade" and self.headers.get("Upgrade") == "echo":
            # A minimal protocol switch (as WebSocket does): after 101, echo lines back.
            self.send_response(101)
            self.send_header("Upgrade", "echo")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            for line in self.rfile:
                self.wfile.write(b"echo: " + line)
                self.wfile.flush()
            self.close_connection = True
        elif url.path == "/newuserns":
            # clone(CLONE_NEWUSER | SIGCHLD) straight through syscall(2), as an exploit would.
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            pid = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)
            if pid == 0:
                os._exit(0)
            if pid > 0:
                os.waitpid(pid, 0)
                self.reply(200, "created a user namespace\n")
            else:
                self.reply(200, f"refused: errno {ctypes.get_errno()}\n")
        elif url.path == "/headers":
            self.reply(200, json.dumps(dict(self.headers)) + "\n")
        elif url.path == "/env":
            self.reply(200, json.dumps(dict(os.environ)) + "\n")
        elif url.path == "/connect":
            try:
                with socket.create_connection((q["host"], int(q["port"])), timeout=5) as c:
                    self.reply(200, c.recv(200).decode(errors="replace"))
            except OSError as e:
                self.reply(200, f"error: {e}\n")
        elif url.path == "/resolve":
            try:
                self.reply(200, socket.gethostbyname(q["host"]) + "\n")
            except OSError as e:
                self.reply(200, f"error: {e}\n")
        else:
            self.reply(404, "not found\n")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        self.reply(200, f"received {len(body)} bytes, last {body[-8:].decode(errors='replace')}\n")

    def log_message(self, fmt, *args):
        print("request", self.path, flush=True)


class Server(ThreadingHTTPServer):
    # Bursts of connections from the gateway must not overflow the accept queue.
    request_queue_size = 128


def gate():
    """With GATE_PORT set, asks a TCP service on the host whether to start at all (so a test can
    make starts fail without a redeploy): anything but "open" ends the start with exit code 7."""
    gate_port = os.environ.get("GATE_PORT")
    if not gate_port:
        return
    try:
        with socket.create_connection(("host.hoist.internal", int(gate_port)), timeout=5) as c:
            answer = c.recv(100).decode(errors="replace").strip()
    except OSError as e:
        answer = f"unreachable ({e})"
    if answer != "open":
        print(f"gate says {answer}: not starting", flush=True)
        sys.exit(7)


def terminate(signum, frame):
    # The app is PID 1 of its sandbox: without a handler SIGTERM would be ignored and every stop
    # would wait out the grace period.
    print("terminating on SIGTERM", flush=True)
    os._exit(0)


signal.signal(signal.SIGTERM, terminate)
gate()
# A slow starter, for tests of requests held during a start.
time.sleep(int(os.environ.get("START_DELAY_MS", "0")) / 1000)
port = int(os.environ.get("PORT", "8080"))
print(f"probe listening on {port}", file=sys.stderr, flush=True)
Server(("0.0.0.0", port), Handler).serve_forever()
