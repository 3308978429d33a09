"""`hoist logs NAME --grep TEXT` over 1 GB of retained logs (issue 5: under 1 s).

A server is started with `--log-max-size 2GB` and a service is deployed (the minimal app), so
the service, its deployment and an instance exist. Then the server is stopped and SIZE_MB of
log lines (about 120 bytes each, like an access log: method, path, status, duration, bytes,
instance) are written behind its back where it keeps them, because producing 1 GB through an
app would take minutes: half as app output into its SQLite database (same schema), half as
access log segment files (same format); NEEDLES lines among them carry a rare marker. The
server is started again; the time it takes to add the SQLite half to its trigram index (in
the background, as it does for lines it stores itself) is printed as an indexing rate; the
access log is searched by a scan and has no index. Then
`hoist logs NAME --grep MARKER` is run RUNS times (after one
warm-up run, so the database is in the page cache as it would be on a busy server); the
median wall time is printed with how many lines it found, and the same search for a text that
matches nothing (the full scan, nothing to print).
"""

import os
import random
import sqlite3
import statistics
import subprocess
import sys
import time

from common import HOIST, MINIMAL_APP, Server, git_repo

SIZE_MB = int(os.environ.get("SIZE_MB", "1024"))
RUNS = int(os.environ.get("RUNS", "5"))
NEEDLES = 25
# About 120 bytes a line: the marker on every n-th line of each half gives NEEDLES in all.
NEEDLE_EVERY = max(1, SIZE_MB * 1024 * 1024 // 120 // NEEDLES)
NAME = "chatty"
MARKER = "needle-7f3a9c"


def lines(rng, instance, count_from):
    """Access-log-like lines (about 120 bytes), every NEEDLE_EVERY-th with the marker."""
    paths = ["/", "/api/items", "/api/items/42", "/login", "/static/app.js", "/healthz"]
    n = count_from
    while True:
        n += 1
        marker = f" {MARKER}" if n % NEEDLE_EVERY == 0 else ""
        yield (f"GET {rng.choice(paths)}?q={rng.getrandbits(48):012x} {rng.choice((200, 200, 200, 304, 404))} "
               f"{rng.random() * 20:.1f}ms in=0 out={rng.randint(100, 9000)} instance={instance}{marker}")


def fill_sqlite(db_path, instance, deployment, target):
    """App output (stdout) into the SQLite log; returns (rows, bytes, last id)."""
    rng = random.Random(42)
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    ts = int(time.time() * 1000) - 3600 * 1000
    total = rows = 0
    batch = []
    for line in lines(rng, instance, 0):
        if total >= target:
            break
        rows += 1
        total += len(line) + 64
        ts += 1
        batch.append((NAME, deployment, instance, "stdout", ts, line))
        if len(batch) == 50_000:
            conn.executemany("INSERT INTO logs (service, deployment, instance, stream, ts, line) "
                             "VALUES (?, ?, ?, ?, ?, ?)", batch)
            conn.commit()
            batch.clear()
    if batch:
        conn.executemany("INSERT INTO logs (service, deployment, instance, stream, ts, line) "
                         "VALUES (?, ?, ?, ?, ?, ?)", batch)
    conn.execute("UPDATE services SET log_bytes = log_bytes + ? WHERE name = ?", (total, NAME))
    conn.commit()
    last_id = conn.execute("SELECT max(id) FROM logs").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return rows, total, last_id


def fill_access(data, instance, first_id, target):
    """The access log, as the server writes it: 8 MB segment files of `id TAB ts TAB instance
    TAB line`. Returns (lines, bytes)."""
    rng = random.Random(7)
    folder = os.path.join(data, "access-log", NAME)
    os.makedirs(folder, exist_ok=True)
    ts = int(time.time() * 1000) - 3600 * 1000
    total = rows = 0
    seg, seg_bytes, chunk = None, 0, []
    next_id = first_id
    for line in lines(rng, instance, 10**9):
        if total >= target:
            break
        if seg is None or seg_bytes >= 8 * 1024 * 1024:
            if seg:
                seg.write("".join(chunk))
                chunk.clear()
                seg.close()
            seg = open(os.path.join(folder, f"{next_id:020}-{ts}.log"), "w")
            seg_bytes = 0
        record = f"{next_id}\t{ts}\t{instance}\t{line}\n"
        chunk.append(record)
        seg_bytes += len(record)
        total += len(record)
        rows += 1
        next_id += 1
        ts += 1
    if seg:
        seg.write("".join(chunk))
        seg.close()
    return rows, total


def index_lag(server):
    values = server.metrics("hoist_log_index_lag_lines ")
    if not values:
        raise SystemExit("no hoist_log_index_lag_lines in /metrics")
    return int(values[0])


def timed(server, text, stream=None):
    t0 = time.perf_counter()
    stream = ["--stream", stream] if stream else []
    out = subprocess.run([HOIST, "logs", NAME, "--grep", text, "--tail", "1000000", *stream],
                         env=server.env, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, sum(1 for l in out.splitlines() if text in l)


def main():
    repo = git_repo(None, {"app.py": MINIMAL_APP,
                           "hoist.toml": 'runtime = "python"\nstart = "python3 app.py"\n'})
    extra = ("--log-max-size", "2GB")
    server = Server("grep", extra)
    try:
        server.hoist("deploy", repo, "--name", NAME)
        status = server.hoist("status", NAME)
        deployment = status.split("live", 1)[1].split()[0]
        instance = next((w for w in status.split() if w.startswith("i-")), "i-0000000000")
        data = server.data
        server.proc.terminate()
        server.proc.wait(timeout=30)
        t0 = time.perf_counter()
        half = SIZE_MB * 1024 * 1024 // 2
        app_rows, app_size, last_id = fill_sqlite(os.path.join(data, "hoist.db"), instance, deployment, half)
        access_rows, access_size = fill_access(data, instance, last_id + 1, half)
        rows, size = app_rows + access_rows, app_size + access_size
        print(f"wrote {app_rows:,} lines of app output ({app_size / 2**20:.0f} MB, SQLite) and "
              f"{access_rows:,} access lines ({access_size / 2**20:.0f} MB, segment files) in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        server = Server("grep", extra, data=data)
        # The lines went in behind the server's back; it indexes them in the background.
        t0 = time.perf_counter()
        lag = index_lag(server)
        deadline = time.monotonic() + 1800
        while lag > 0 and time.monotonic() < deadline:
            time.sleep(2)
            lag = index_lag(server)
        took = time.perf_counter() - t0
        print(f"indexed {app_rows:,} lines in {took:.0f} s ({app_rows / took:,.0f} lines/s); lag now {lag}",
              flush=True)
        timed(server, MARKER)  # warm-up: pages into the cache
        hits = [timed(server, MARKER) for _ in range(RUNS)]
        misses = [timed(server, "matches-nothing-at-all") for _ in range(RUNS)]
        access_only = [timed(server, MARKER, "access") for _ in range(RUNS)]
        app_only = [timed(server, MARKER, "stdout") for _ in range(RUNS)]
    finally:
        server.stop()
    found = hits[0][1]
    print(f"hoist logs {NAME} --grep TEXT over {size / 2**20:.0f} MB ({rows:,} lines), {RUNS} runs, medians:")
    print(f"  {found} matching lines    {statistics.median(t for t, _ in hits) * 1000:8.0f} ms")
    print(f"  no match               {statistics.median(t for t, _ in misses) * 1000:8.0f} ms   (target < 1000 ms)")
    for label, runs in (("access log only", access_only), ("app output only", app_only)):
        print(f"  {label:15} {runs[0][1]:3} hits {statistics.median(t for t, _ in runs) * 1000:5.0f} ms")


if __name__ == "__main__":
    sys.exit(main())
