"""The cron tests' app: it counts the calls it gets and remembers each one's cron headers,
the time it arrived, and whether it carried the service's cron secret."""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

CALLS = []
LOCK = threading.Lock()
SECRET = os.environ.get("HOIST_CRON_SECRET", "")


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def record(self, path):
        call = {
            "path": path,
            "method": self.command,
            "arrived_ms": int(time.time() * 1000),
            "job": self.headers.get("X-Hoist-Cron-Job"),
            "schedule_time": self.headers.get("X-Hoist-Schedule-Time"),
            "execution": self.headers.get("X-Hoist-Execution-Id"),
            "secret_ok": bool(SECRET) and self.headers.get("Authorization") == f"Bearer {SECRET}",
            "instance": os.environ.get("HOIST_INSTANCE", ""),
        }
        with LOCK:
            CALLS.append(call)
            # Attempts of this execution so far, this one included.
            return sum(1 for c in CALLS if c["execution"] == call["execution"])

    def handle_any(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/kaithhealth":
            return self.reply(200, "ok\n")
        if url.path == "/calls":
            with LOCK:
                calls = [c for c in CALLS if c["job"] == q.get("job", c["job"])]
            return self.reply(200, json.dumps(calls))
        attempt = self.record(url.path)
        if url.path == "/slow":
            time.sleep(int(q.get("ms", "1000")) / 1000)
            self.reply(200, "slow done\n")
        elif url.path == "/flaky":
            # Fails until the third attempt of an execution.
            self.reply(500 if attempt < 3 else 200, f"attempt {attempt}\n")
        else:
            self.reply(200, "tick\n")

    do_GET = handle_any
    do_POST = handle_any

    def log_message(self, fmt, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
