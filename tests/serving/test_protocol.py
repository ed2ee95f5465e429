"""The HTTP protocol (serving.protocol) on a real uvicorn server, over raw sockets: shedding while parsing, and
the direct path for small prediction requests.

For shedding, the prediction app holds each admitted request until the test releases it, so which requests are
over MAX_IN_FLIGHT is known exactly. The direct path is tried on the real application with a real model.
"""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import uvicorn
from prometheus_client import REGISTRY

from serving import app as serving_app
from serving.config import Settings
from serving.protocol import ServingProtocol
from tests.conftest import free_port
from tests.serving.conftest import MODEL, records


class Held:
    """An ASGI app answering 200 to a prediction only once `release` is set; other paths at once."""

    def __init__(self):
        self.release = threading.Event()
        self.calls = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        self.calls += 1
        if serving_app.is_prediction(scope):
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


def run_uvicorn(asgi, lifespan: str):
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port, http=ServingProtocol, lifespan=lifespan,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    return port, srv, thread


def stop_uvicorn(srv, thread) -> None:
    srv.should_exit = True
    thread.join(10)
    serving_app.Admission.current = None


@pytest.fixture
def server():
    held = Held()
    gate = serving_app.Admission(held, serving_app.Worker(Settings(model_path="unused", max_in_flight=1)))
    port, srv, thread = run_uvicorn(gate, "off")
    yield port, held, gate
    held.release.set()
    stop_uvicorn(srv, thread)


@pytest.fixture
def served(trained_model):
    """The real application, its model loaded."""
    folder, rows = trained_model
    gate = serving_app.create_app(Settings(model_path=str(folder), model_name=MODEL, max_in_flight=2,
                                           body_timeout_seconds=2.0))
    port, srv, thread = run_uvicorn(gate, "on")
    until(lambda: gate.worker.model is not None)
    yield port, gate, rows
    stop_uvicorn(srv, thread)


def until(condition, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def post(path: str = "/invocations", body: bytes = b'{"instances": [{}]}', headers: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class Conn:
    """A keep-alive connection: send raw bytes, read whole responses in order."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def answer(self) -> tuple[int, dict, bytes]:
        """The next response: status, headers (lower-case names), body."""
        status = self.reader.readline()
        assert status, "connection closed"
        headers = {}
        for line in iter(self.reader.readline, b"\r\n"):
            name, _, value = line.decode().rstrip("\r\n").partition(": ")
            headers[name.lower()] = value
        return int(status.split()[1]), headers, self.reader.read(int(headers["content-length"]))

    def closed(self) -> bool:
        return self.reader.read(1) == b""

    def close(self) -> None:
        self.reader.close()  # the socket closes once its file object is closed too
        self.sock.close()


def test_over_the_limit_a_prediction_gets_the_503_at_once_and_the_connection_goes_on(server):
    port, held, gate = server
    first = Conn(port)
    first.send(post())  # takes the one slot, held
    deadline = time.monotonic() + 10
    while gate.in_flight < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    calls = held.calls

    second = Conn(port)
    second.send(post("/v1/models/m:predict", b"x" * 3_000_000, "X-Request-ID: caller-7\r\n"))
    status, headers, body = second.answer()
    assert status == 503 and headers["retry-after"] == "1" and headers["x-request-id"] == "caller-7"
    assert headers["content-type"] == "application/json" and "MAX_IN_FLIGHT" in json.loads(body)["error"]
    assert "server" not in headers  # answered by the parser, not through uvicorn's ASGI cycle
    assert held.calls == calls and gate.in_flight == 1  # the app never saw it, the slot is not taken

    # the same connection carries on: the shed body was skipped, the next request parsed whole
    second.send(b"GET /v1/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
    assert second.answer()[0] == 200
    second.send(post(headers="Connection: close\r\n"))
    status, headers, _ = second.answer()
    assert status == 503 and headers["connection"] == "close" and second.closed()

    held.release.set()
    assert first.answer()[0] == 200 and gate.in_flight == 0
    third = Conn(port)
    third.send(post())
    assert third.answer()[0] == 200  # the slot came back


def test_pipelined_requests_are_answered_in_order(server):
    port, held, gate = server
    held.release.set()
    conn = Conn(port)
    conn.send(post() + b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n" + post())
    assert [conn.answer()[0] for _ in range(3)] == [200, 200, 200]
    assert gate.in_flight == 0


def chunked(path: str, body: bytes) -> bytes:
    """The same request with a chunked body: no Content-Length, so it goes through ASGI."""
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n{len(body):x}\r\n").encode() + body + b"\r\n0\r\n\r\n"


def test_a_small_prediction_gets_the_same_answer_directly_as_through_asgi(served):
    port, gate, rows = served
    conn = Conn(port)
    for path in (f"/v1/models/{MODEL}:predict", "/invocations"):
        body = json.dumps({"instances": records(rows.head(3))}).encode()
        conn.send(post(path, body, "X-Request-ID: caller-1\r\n"))
        status, headers, direct = conn.answer()
        assert status == 200 and headers["x-request-id"] == "caller-1" and "date" in headers
        assert headers["content-type"] == "application/json"
        conn.send(chunked(path, body))
        status, _, through_asgi = conn.answer()
        assert status == 200 and json.loads(direct) == json.loads(through_asgi)
    conn.send(post("/invocations", body) * 3)  # pipelined: the first directly, the others through ASGI, in order
    assert [json.loads(conn.answer()[2]) for _ in range(3)] == [json.loads(through_asgi)] * 3
    # what the direct path does not answer goes through ASGI, body and all: the same errors as ever
    conn.send(post("/v1/models/other:predict", body))
    assert conn.answer()[0] == 404
    bad = dict(records(rows.head(1))[0], amount="lots")
    conn.send(post("/invocations", json.dumps({"instances": [bad]}).encode()))
    status, _, answer = conn.answer()
    assert status == 422 and "instances[0].amount" in answer.decode()
    conn.send(post("/invocations", b"x" * 100 + b"{"))
    assert conn.answer()[0] == 400
    until(lambda: gate.in_flight == 0)


def test_a_client_gone_before_its_answer_frees_its_slot(served):
    port, gate, rows = served
    body = json.dumps({"instances": records(rows.head(2))}).encode()
    for cut in (len(body) // 2, len(body)):  # gone while sending its body, then gone right after sending it
        for _ in range(3):  # more than MAX_IN_FLIGHT (2): a leaked slot would show
            conn = Conn(port)
            conn.send(post("/invocations", body)[:-len(body) + cut or None])
            conn.close()
        until(lambda: gate.in_flight == 0)
    conn = Conn(port)
    conn.send(post("/invocations", body))
    assert conn.answer()[0] == 200


def test_a_body_that_does_not_arrive_in_time_gets_408_and_frees_its_slot(served):
    port, gate, rows = served  # BODY_TIMEOUT_SECONDS 2

    def errors(kind):
        labels = dict(zip(("model", "model_version", "role"), gate.worker.labels()), kind=kind)
        return REGISTRY.get_sample_value("model_inference_errors_total", labels) or 0

    before = errors("client"), errors("server")
    small = json.dumps({"instances": records(rows.head(2))}).encode()
    large = b'{"instances": [' + b" " * 100_000 + b"]}"  # over 64 KiB: read through ASGI
    for body in (small, large):
        conn = Conn(port)
        conn.send(post("/invocations", body)[:-20])  # all but the last 20 bytes, then nothing
        started = time.monotonic()
        status, headers, answer = conn.answer()
        assert status == 408 and "BODY_TIMEOUT_SECONDS" in answer.decode()
        assert headers["connection"] == "close" and conn.closed() and 1.8 < time.monotonic() - started < 8
        until(lambda: gate.in_flight == 0)
    conn = Conn(port)  # a prediction pipelined behind another is read through ASGI, under the same deadline
    conn.send(post("/invocations", small) + post("/invocations", small)[:-20])
    assert conn.answer()[0] == 200
    status, headers, answer = conn.answer()
    assert status == 408 and headers["connection"] == "close" and conn.closed()
    until(lambda: gate.in_flight == 0)
    # the ones read through ASGI count as client errors, not as server errors for the canary
    assert (errors("client"), errors("server")) == (before[0] + 2, before[1])
    conn = Conn(port)  # slow, but within the deadline
    request = post("/invocations", small)
    conn.send(request[:-20])
    time.sleep(0.3)
    conn.send(request[-20:])
    assert conn.answer()[0] == 200


def test_a_failure_while_answering_directly_is_a_500_and_frees_the_slot(served, monkeypatch):
    port, gate, rows = served
    monkeypatch.setattr(gate.worker, "answer", lambda *args: 1 / 0)
    conn = Conn(port)
    conn.send(post("/invocations", json.dumps({"instances": records(rows.head(1))}).encode()))
    status, _, answer = conn.answer()
    assert status == 500 and "internal error" in answer.decode()
    until(lambda: gate.in_flight == 0)


def test_a_shed_request_waiting_for_100_continue_gets_its_503_at_once(server):
    port, held, gate = server
    first = Conn(port)
    first.send(post())  # takes the one slot, held
    until(lambda: gate.in_flight == 1)
    waiting = Conn(port)
    waiting.send(post(headers="Expect: 100-continue\r\n").split(b"\r\n\r\n")[0] + b"\r\n\r\n")  # no body yet
    status, headers, _ = waiting.answer()
    assert status == 503 and headers["connection"] == "close" and waiting.closed()
