"""The HTTP protocol of a worker (uvicorn's httptools one): load shedding and a direct path for predictions.

Under a flood, every request answered through ASGI costs a task, a scope, a Starlette dispatch and two socket
writes, and each step waits its turn behind everything else the event loop has to do. So this protocol:
- refuses a prediction request beyond MAX_IN_FLIGHT as it is parsed, writing the same 503 that `Admission`
  would straight to the socket. It takes the slot of an admitted request at once (requests parsed in one read
  would otherwise all see a free slot);
- answers an admitted prediction with a small body (a Content-Length up to app.OFF_LOOP_BYTES and
  MAX_BODY_BYTES) without ASGI: `Worker.predict_now` checks its rows and queues them for the micro-batcher,
  and the response goes out in one write when they are predicted. What that path does not answer (no
  model yet, another model's name, rows the contract refuses) goes on through ASGI with the body already read,
  so every answer is the one `Worker.predict` gives.
Everything else, pipelined requests included, goes through ASGI as usual; `Admission` stays the authority there.
A direct request whose body has not arrived within BODY_TIMEOUT_SECONDS gets a 408 and its connection closed.
"""
from __future__ import annotations

import logging
from http import HTTPStatus

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving import app, metrics

log = logging.getLogger("serving")
KSERVE_PREFIX, KSERVE_SUFFIX = "/v1/models/", ":predict"


def response(status: int, request_id: str, body: bytes, keep_alive: bool, headers=()) -> bytes:
    """A whole JSON response: status line, headers, body."""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, HTTPStatus(status).phrase.encode()),
             *(b"%s: %s\r\n" % pair for pair in headers), b"content-type: application/json\r\n",
             b"x-request-id: ", request_id.encode("ascii"), b"\r\n", b"content-length: %d\r\n" % len(body)]
    if not keep_alive:
        lines.append(b"connection: close\r\n")
    return b"".join([*lines, b"\r\n", body])


def shed_response(request_id: str, keep_alive: bool) -> bytes:
    """The bytes of the 503 that Admission answers through ASGI: same headers, same body."""
    return response(503, request_id, app.SHED_BODY, keep_alive, ((b"retry-after", b"%d" % app.RETRY_AFTER),))


def _content_length(headers: list) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class ServingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with load shedding and the direct path for small prediction requests."""

    shedding = False
    direct = None  # the cycle of the admitted request being read for the direct path
    body_timer = None  # the direct request's BODY_TIMEOUT_SECONDS deadline, set when a read ends without its body

    def on_message_begin(self) -> None:
        self.shedding = False
        self._unset_keepalive_if_required()  # a shed answer in this same read armed it
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        gate = app.Admission.current
        idle = self.cycle is None or self.cycle.response_complete  # nothing pipelined ahead: order is kept
        if gate is not None and idle and self.parser.get_method() == b"POST" and not self.parser.should_upgrade():
            path = httptools.parse_url(self.url).path.decode("ascii", "replace")
            if app.is_prediction({"method": "POST", "path": path}):
                if not gate.admit():
                    self.shedding = True
                    if self.expect_100_continue:  # it waits for a go-ahead before its body: answer now, close
                        self._shed(keep_alive=False)
                    return
                length = _content_length(self.headers)
                direct = (not self.expect_100_continue and length is not None
                          and length <= min(app.OFF_LOOP_BYTES, gate.worker.settings.max_body_bytes))
                self.scope["admitted"] = True  # its slot is taken; released when it is answered
                self.scope["direct"] = direct
                super().on_headers_complete()
                if direct:
                    self.direct = self.cycle
                return
        super().on_headers_complete()

    def _start_asgi_task(self, cycle, asgi) -> None:
        if not cycle.scope.pop("direct", False):  # a direct request starts in on_message_complete, if at all
            super()._start_asgi_task(cycle, asgi)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.direct is not None and self.body_timer is None:
            timeout = app.Admission.current.worker.settings.body_timeout_seconds
            self.body_timer = self.loop.call_later(timeout, self._body_too_slow, self.direct)

    def on_body(self, body: bytes) -> None:
        if not self.shedding:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.shedding:
            return self._shed()
        self._stop_body_timer()
        super().on_message_complete()
        cycle, self.direct = self.direct, None
        if cycle is not None:
            self._answer_directly(cycle)

    def connection_lost(self, exc) -> None:
        self._stop_body_timer()
        if self.direct is not None:  # gone while its body was being read: nobody else will free the slot
            self.direct = None
            app.Admission.current.release()
        super().connection_lost(exc)

    def _stop_body_timer(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def _body_too_slow(self, cycle) -> None:
        """A direct request whose body has not arrived in BODY_TIMEOUT_SECONDS: 408 and close, so a client that
        trickles its body (or never sends it) cannot hold a slot; it is freed as the connection closes.
        (`Worker.predict` keeps the same deadline on the bodies it reads.)"""
        self.body_timer = None
        if self.transport.is_closing():
            return
        self.transport.write(response(408, app.request_id_of(cycle.scope), app.BODY_LATE_JSON, False,
                                      self.server_state.default_headers))
        self.transport.close()

    def _shed(self, keep_alive: bool | None = None) -> None:
        if self.transport.is_closing():  # answered already (Expect: 100-continue), or the client is gone
            return
        gate = app.Admission.current
        metrics.SHED.labels(*gate.worker.labels()).inc()
        keep_alive = self.parser.should_keep_alive() if keep_alive is None else keep_alive
        self.transport.write(shed_response(app.request_id_of({"headers": self.headers}), keep_alive))
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()  # keep-alive timer, next pipelined request: as after any response

    def _answer_directly(self, cycle) -> None:
        gate = app.Admission.current
        request_id = app.request_id_of(cycle.scope)
        path = cycle.scope["path"]
        kserve = path != "/invocations"
        name = path[len(KSERVE_PREFIX):-len(KSERVE_SUFFIX)] if kserve else None

        def reply(status: int, body: bytes) -> None:
            gate.release()
            if cycle.disconnected or self.transport.is_closing():
                return
            self.transport.write(response(status, request_id, body, cycle.keep_alive,
                                          self.server_state.default_headers))
            cycle.response_complete = True
            cycle.message_event.set()
            if not cycle.keep_alive:
                self.transport.close()
            cycle.on_response()

        try:
            answered = (name is None or "/" not in name) and gate.worker.predict_now(
                kserve, name, bytes(cycle.body), request_id, reply)
        except Exception:  # before its rows were queued: the full path answers it, a 500 logged if it fails too
            log.exception("direct path failed (request %s)", request_id)
            answered = False
        if not answered:
            super()._start_asgi_task(cycle, self.app)  # the full path answers, with the body already read
