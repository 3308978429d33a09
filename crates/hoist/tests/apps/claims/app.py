"""The app of tests/claims.rs, standard library only: known workloads (CPU for a known time,
a sleep, output at known moments, memory), bodies read to the end whatever their framing, and
a WebSocket echo."""

import base64
import hashlib
import os
import signal
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

HOLD = []
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def busy(ms):
    """Burns `ms` of this process's CPU time (not wall time: a busy machine makes it take
    longer, but the CPU it costs is known)."""
    end = time.process_time() + ms / 1000
    n = 0
    while time.process_time() < end:
        n += 1
    return n


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

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
        if url.path == "/busy":
            busy(int(q.get("ms", "100")))
            self.reply(200, "busy done\n")
        elif url.path == "/sleep":
            time.sleep(int(q.get("ms", "100")) / 1000)
            self.reply(200, "slept\n")
        elif url.path == "/say":
            # A line the moment the request arrives, then the answer `ms` later.
            print(q.get("text", "said"), flush=True)
            time.sleep(int(q.get("ms", "0")) / 1000)
            self.reply(200, "said\n")
        elif url.path == "/print":
            # n numbered lines, paced so the log pipeline keeps every one.
            n = int(q.get("n", "100"))
            for i in range(1, n + 1):
                sys.stdout.write(f"{q.get('word', 'needle-row')} {i:06d}\n")
                if i % 500 == 0:
                    sys.stdout.flush()
                    time.sleep(0.02)
            sys.stdout.flush()
            self.reply(200, f"printed {n}\n")
        elif url.path == "/status":
            self.reply(int(q.get("code", "500")), "as asked\n")
        elif url.path == "/alloc":
            mb = int(q.get("mb", "1"))
            for _ in range(mb):
                block = bytearray(1024 * 1024)
                for i in range(0, len(block), 4096):
                    block[i] = 1
                HOLD.append(block)
            self.reply(200, f"allocated {mb} MB\n")
        elif url.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self.websocket()
        else:
            self.reply(200, f"target {len(self.path)} header {self.longest_header()}\n")

    def longest_header(self):
        return max((len(k) + 2 + len(v) for k, v in self.headers.items()), default=0)

    def do_POST(self):
        # Read to the end and count, whatever the framing: the gateway forwards a body
        # without a Content-Length as chunked.
        total = 0
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    left -= len(self.rfile.read(min(left, 1 << 20)))
                total += size
                self.rfile.readline()
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                got = len(self.rfile.read(min(left, 1 << 20)))
                if got == 0:
                    break
                left -= got
                total += got
        self.reply(200, f"received {total} bytes\n")

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                break
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                (length,) = struct.unpack(">H", self.rfile.read(2))
            elif length == 127:
                (length,) = struct.unpack(">Q", self.rfile.read(8))
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.rfile.read(length)))
            if opcode == 8:
                break
            # "after MS": the echo comes MS later, so the connection lives past a timeout.
            text = data.decode(errors="replace")
            if text.startswith("after "):
                time.sleep(int(text.split()[1]) / 1000)
            out = ("echo " + text).encode()
            self.wfile.write(bytes([0x81, len(out)]) + out)
            self.wfile.flush()
        self.close_connection = True

    def log_message(self, fmt, *args):
        pass


class Server(ThreadingHTTPServer):
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that leaves early (a readiness probe does) is not worth a traceback in
        # the log the tests read.
        pass


def terminate(signum, frame):
    # The line is the app's last output, written while the platform stops it.
    print(f"terminating {os.environ.get('TERM_WORD', '')}", flush=True)
    os._exit(0)


signal.signal(signal.SIGTERM, terminate)
time.sleep(int(os.environ.get("START_DELAY_MS", "0")) / 1000)
Server(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
