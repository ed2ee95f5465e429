"""Load shedding in the HTTP parser: a prediction request beyond MAX_IN_FLIGHT is refused as it is parsed.

Under a flood, each refused request answered through ASGI costs a task, a scope and two sends on the event loop,
and the admitted requests wait behind all of them. This protocol (uvicorn's httptools one) writes the same 503
straight to the socket instead, so the worker's time goes to the requests it admitted. It takes the slot of
an admitted request at once (requests parsed in one read would otherwise all see a free slot); `Admission` in
serving.app releases it, and refuses through ASGI what reaches it another way (a pipelined request).
"""
from __future__ import annotations

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving import app, metrics

STATUS = b"HTTP/1.1 503 Service Unavailable\r\n"


def shed_response(request_id: str, keep_alive: bool) -> bytes:
    """The bytes of the 503 that Admission answers through ASGI: same headers, same body."""
    headers = [STATUS, b"content-type: application/json\r\n", b"retry-after: %d\r\n" % app.RETRY_AFTER,
               b"x-request-id: ", request_id.encode("ascii"), b"\r\n",
               b"content-length: %d\r\n" % len(app.SHED_BODY)]
    if not keep_alive:
        headers.append(b"connection: close\r\n")
    return b"".join([*headers, b"\r\n", app.SHED_BODY])


class SheddingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing predictions beyond the worker's MAX_IN_FLIGHT while parsing."""

    shedding = False

    def on_message_begin(self) -> None:
        self.shedding = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        gate = app.Admission.current
        idle = self.cycle is None or self.cycle.response_complete  # nothing pipelined ahead: order is kept
        if gate is not None and idle and self.parser.get_method() == b"POST":
            path = httptools.parse_url(self.url).path.decode("ascii", "replace")
            if app.is_prediction({"method": "POST", "path": path}):
                if not gate.admit():
                    self.shedding = True
                    return
                super().on_headers_complete()
                self.scope["admitted"] = True  # its slot is taken; Admission releases it when answered
                return
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self.shedding:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self.shedding:
            return super().on_message_complete()
        gate = app.Admission.current
        metrics.SHED.labels(*gate.worker.labels()).inc()
        keep_alive = self.parser.should_keep_alive()
        self.transport.write(shed_response(app.request_id_of({"headers": self.headers}), keep_alive))
        if not keep_alive:
            self.transport.close()
        self.on_response_complete()  # keep-alive timer, next pipelined request: as after any response
