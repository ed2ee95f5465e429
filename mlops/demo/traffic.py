"""The demo's traffic: the `mlops serve` processes it starts, the switch in front of them, and the prediction
requests it sends."""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

from mlops.demo.processes import STOP, DemoError, checkpoint, pause

ROWS_PER_REQUEST = (1, 40)


# --- servers ----------------------------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """One `mlops serve` process (its own process group) on a loopback port."""
    version: str
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.port


def start_server(home: Path, tracking_uri: str, model_name: str, version: str, log_uri: str,
                 servers: list[Server]) -> Server:
    """`mlops serve` on the production alias (which names `version`), with the inference log on, added to
    `servers` at once (to be stopped whatever happens next); returned once ready."""
    port, log = free_port(), home / "logs" / f"serve-v{version}.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "INFERENCE_LOG_URI": log_uri,
           "INFERENCE_LOG_FLUSH_SECONDS": "1", "HOST": "127.0.0.1"}
    command = [sys.executable, "-m", "mlops.cli", "serve", "--model-uri", f"models:/{model_name}@production",
               "--port", str(port), "--metrics-port", str(free_port()), "--workers", "1"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    server = Server(version, process, port, log)
    servers.append(server)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DemoError(f"mlops serve of version {version} exited ({process.returncode}): "
                            f"{log.read_text()[-2000:]}")
        try:
            status, body, _ = request(server.address, "GET", "/v1/health/ready", timeout=5)
        except OSError:
            status, body = None, b""
        if status == 200:
            served = json.loads(body)["model_version"]
            if served != version:
                raise DemoError(f"mlops serve loaded version {served} of the production alias, expected {version}")
            return server
        pause(0.3)
    raise DemoError(f"mlops serve of version {version} was not ready after 180 s; its log: {log}")


def request(address: tuple[str, int], method: str, path: str, body: bytes | None = None,
            headers: dict | None = None, timeout: float = 30.0) -> tuple[int, bytes, dict]:
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.request(method, path, body, headers or {})
        response = conn.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        conn.close()


# --- the switch: the demo's front door --------------------------------------------------------------------

class Switch(ThreadingHTTPServer):
    """Forwards each request to the current server. `to(server)` sends new requests to another server, then
    waits until none is left on the previous one, which can then stop without dropping a request."""
    daemon_threads = True

    def __init__(self, port: int):
        super().__init__(("127.0.0.1", port), _Forward)  # binds now: a port in use is known before anything runs
        self.current: Server | None = None
        self.in_flight: dict[str, int] = {}
        self.served: dict[str, int] = {}
        self.changed = threading.Condition()
        self.serving: threading.Thread | None = None

    def to(self, server: Server, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            previous, self.current = self.current, server
            while previous is not None and self.in_flight.get(previous.version, 0):
                if time.monotonic() > deadline:
                    raise DemoError(f"requests to version {previous.version} still in flight after {timeout:.0f} s")
                self.changed.wait(0.2)
                checkpoint()

    def acquire(self) -> Server:
        with self.changed:
            server = self.current
            self.in_flight[server.version] = self.in_flight.get(server.version, 0) + 1
            return server

    def release(self, server: Server, ok: bool) -> None:
        with self.changed:
            self.in_flight[server.version] -= 1
            self.served[server.version] = self.served.get(server.version, 0) + ok
            self.changed.notify_all()


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the traffic holds its connections
    server: Switch

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "x-request-id")}
        backend = self.server.acquire()
        status = 502
        try:
            status, data, answer = request(backend.address, self.command, self.path, body or None, headers)
            answer = {k: v for k, v in answer.items() if k.lower() in ("content-type", "x-request-id", "retry-after")}
        except OSError as exc:
            data, answer = json.dumps({"error": f"version {backend.version}: {exc}"}).encode(), {}
        finally:
            self.server.release(backend, status == 200)
        self.send_response(status)
        for key, value in answer.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward

    def log_message(self, *args) -> None:
        pass


# --- traffic ----------------------------------------------------------------------------------------------

def transactions(rows: int, seed: int, drift: float = 0.0):
    """Requests' rows: the generator's transactions (never the training rows), without their labels, and the
    labels, which no request carries: the demo sends them later as the outcomes of the served requests."""
    from mlops import datagen

    table = datagen.generate(rows, seed, drift)
    return table.drop(columns=[datagen.LABEL]), table[datagen.LABEL].to_numpy()


def bodies(frame, labels, seed: int) -> list[tuple[int, bytes, list]]:
    """The rows as KServe v1 requests of 1 to 40 rows each: (rows, JSON body, the rows' labels)."""
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    sizes = np.random.default_rng(seed).integers(*ROWS_PER_REQUEST, endpoint=True, size=len(records))
    out, i = [], 0
    for size in sizes:
        if i >= len(records):
            break
        chunk = records[i:i + size]
        out.append((len(chunk), json.dumps({"instances": chunk}).encode(), labels[i:i + size].tolist()))
        i += size
    return out


class Traffic:
    """Threads sending prediction requests to the switch, each with an X-Request-ID of its own, counting what
    was served and what failed, and keeping the labels of each served request's rows (its outcomes)."""

    def __init__(self, address: tuple[str, int], model_name: str):
        self.address, self.path = address, f"/v1/models/{model_name}:predict"
        self.lock = threading.Lock()
        self.served = self.failed = self.rows = 0
        self.errors: list[str] = []
        self.answered: list[tuple[str, list]] = []  # (request id as answered, its rows' labels), until taken

    def counts(self) -> str:
        return f"requests: {self.served:,} served, {self.failed:,} failed ({self.rows:,} rows)"

    def outcomes(self, label: str):
        """The outcomes of the requests served since the last call: request_id, row (the position in the
        request) and `label`, one row per row served."""
        import pandas as pd

        with self.lock:
            taken, self.answered = self.answered, []
        return pd.DataFrame({"request_id": [rid for rid, labels in taken for _ in labels],
                             "row": [row for _, labels in taken for row in range(len(labels))],
                             label: [value for _, labels in taken for value in labels]})

    def _send(self, conn: http.client.HTTPConnection, request_id: str, rows: int, body: bytes,
              labels: list) -> http.client.HTTPConnection:
        try:
            conn.request("POST", self.path, body, {"Content-Type": "application/json", "X-Request-ID": request_id})
            response = conn.getresponse()
            data = response.read()
            ok, why = response.status == 200, f"HTTP {response.status}: {data[:200]!r}"
            request_id = response.getheader("X-Request-ID") or request_id  # the id the log has
        except OSError as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
            conn.close()
            conn = http.client.HTTPConnection(*self.address, timeout=60)
        with self.lock:
            if ok:
                self.served, self.rows = self.served + 1, self.rows + rows
                self.answered.append((request_id, labels))
            else:
                self.failed += 1
                self.errors.append(why)
        return conn

    def send(self, requests: list[tuple[int, bytes, list]], prefix: str, threads: int = 4,
             stop: threading.Event | None = None, rate: float | None = None) -> None:
        """Send every request once (`threads` at a time), or, with `stop`, in a loop at `rate` per second
        until it is set; the n-th request sent has the id `<prefix>-<n>`."""
        stop_all = threading.Event()
        cursor = iter(range(10**12))
        lock = threading.Lock()

        def worker():
            conn = http.client.HTTPConnection(*self.address, timeout=60)
            try:
                while not (stop_all.is_set() or STOP.is_set() or (stop is not None and stop.is_set())):
                    with lock:
                        i = next(cursor)
                    if stop is None and i >= len(requests):
                        return
                    conn = self._send(conn, f"{prefix}-{i:06d}", *requests[i % len(requests)])
                    if rate:
                        time.sleep(threads / rate)
            finally:
                conn.close()

        pool = [threading.Thread(target=worker, name=f"demo-traffic-{n}", daemon=True) for n in range(threads)]
        for thread in pool:
            thread.start()
        try:
            for thread in pool:
                while thread.is_alive():
                    thread.join(0.2)
                    checkpoint()
        finally:
            stop_all.set()
