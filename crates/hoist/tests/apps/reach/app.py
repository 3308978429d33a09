"""A test app that tries TCP connections to the host (host.hoist.internal).

As a server, `GET /reach?port=N` answers one line; as a command (`python3 app.py N...`, e.g.
in a build) it prints one line per port. A line is `reach N: connected` or
`reach N: failed (REASON)`: a connect only, with a short timeout, nothing is sent.
"""

import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def reach(port):
    try:
        with socket.create_connection(("host.hoist.internal", port), timeout=3):
            return f"reach {port}: connected"
    except OSError as e:
        return f"reach {port}: failed ({e})"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/reach":
            body, status = reach(int(q["port"])) + "\n", 200
        else:
            body, status = "reach app\n", 200
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


if __name__ == "__main__":
    if len(sys.argv) > 1:
        for port in sys.argv[1:]:
            print(reach(int(port)), flush=True)
        sys.exit(0)
    ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
