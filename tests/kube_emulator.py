"""A small stateful Kubernetes API emulator over real HTTP, for the deployment tests.

It keeps objects by (api path prefix, namespace, plural, name) with resourceVersion and generation as the
API server keeps them: every write bumps resourceVersion, a change of `spec` bumps generation, the
status subresource writes `status` alone. It serves get, list, watch (a stream of JSON lines, resumable
from a resourceVersion, ending at timeoutSeconds or when dropped), JSON merge patch and JSON patch.
Faults for tests: `fail(n, status)` answers the next n requests with that status, `forbid(verb, plural)`
answers 403, `drop_watches()` cuts open watch streams. `on_write(fn)` lets a test play the controller
(Argo Rollouts, the Deployment controller) by changing status after each write.
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from tests.conftest import send_json

PATH = re.compile(r"^(?P<prefix>/apis/[^/]+/[^/]+|/api/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)"
                  r"(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$")


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    target = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = merge_patch(target.get(key), value)
    return target


def json_patch(doc, ops):
    """RFC 6902 (test, replace, add, remove); a failed test raises ValueError."""
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        key = int(last) if isinstance(parent, list) and last != "-" else last
        if op["op"] == "test":
            if parent[key] != op["value"]:
                raise ValueError(f"test failed at {op['path']}")
        elif op["op"] in ("replace", "add"):
            if isinstance(parent, list) and op["op"] == "add":
                parent.insert(len(parent) if key == "-" else key, op["value"])
            else:
                parent[key] = op["value"]
        elif op["op"] == "remove":
            del parent[key]
    return doc


def pod_hash(template: dict) -> str:
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]


class Emulator:
    def __init__(self):
        self.objects: dict[tuple, dict] = {}
        self.events: list[tuple[int, tuple, str, dict]] = []  # (resourceVersion, key, type, object)
        self.requests: list[tuple[str, str, str]] = []       # (verb, plural, subresource or "")
        self.rv = 100
        self.cond = threading.Condition()
        self.faults: list[int] = []
        self.forbidden: set[tuple[str, str]] = set()
        self.watchers_epoch = 0
        self.hooks = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    # --- test controls ----------------------------------------------------------------------------
    def close(self):
        self.drop_watches()
        self.server.shutdown()

    def kubeconfig(self, path) -> str:
        path.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": "test-token"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": "mlops"}}]}))
        return str(path)

    def fail(self, n: int, status: int = 500):
        self.faults += [status] * n

    def forbid(self, verb: str, plural: str):
        self.forbidden.add((verb, plural))

    def drop_watches(self):
        with self.cond:
            self.watchers_epoch += 1
            self.cond.notify_all()

    def on_write(self, fn):
        self.hooks.append(fn)

    def put(self, prefix: str, ns: str, plural: str, obj: dict) -> dict:
        """Create or replace an object (what `kubectl apply` would have left)."""
        key = (prefix, ns, plural, obj["metadata"]["name"])
        obj = copy.deepcopy(obj)
        obj["metadata"].setdefault("namespace", ns)
        obj["metadata"].setdefault("generation", 1)
        return self._store(key, obj, "ADDED" if key not in self.objects else "MODIFIED")

    def get(self, prefix: str, ns: str, plural: str, name: str) -> dict:
        with self.cond:
            return copy.deepcopy(self.objects[(prefix, ns, plural, name)])

    def set_status(self, prefix: str, ns: str, plural: str, name: str, status: dict) -> dict:
        """The controller's write: merge `status` into the object."""
        key = (prefix, ns, plural, name)
        with self.cond:
            obj = copy.deepcopy(self.objects[key])
        obj["status"] = merge_patch(obj.get("status") or {}, status)
        return self._store(key, obj, "MODIFIED", hooks=False)

    # --- state --------------------------------------------------------------------------------------
    def _store(self, key, obj, kind, hooks=True) -> dict:
        with self.cond:
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.objects[key] = obj
            self.events.append((self.rv, key, kind, copy.deepcopy(obj)))
            self.cond.notify_all()
            result = copy.deepcopy(obj)
        if hooks:
            for hook in self.hooks:
                hook(key, result)
        return result

    def _patch(self, key, sub, body, content_type) -> dict:
        with self.cond:
            old = copy.deepcopy(self.objects[key])
        if "json-patch" in content_type:
            new = json_patch(old, body)
        else:
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if rv is not None and rv != old["metadata"]["resourceVersion"]:
                raise ValueError("conflict: the object has been modified")
            new = merge_patch(old, body)
        if sub == "status":
            new = {**old, "status": new.get("status")}
        else:
            new["status"] = old.get("status")
            if new.get("spec") != old.get("spec"):
                new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        return self._store(key, new, "MODIFIED")

    # --- HTTP ---------------------------------------------------------------------------------------
    def _handler(self):
        emu = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # watch events go out as they happen, in chunks

            def log_message(self, *args):
                pass

            def _send(self, status, body):
                send_json(self, status, body)

            def _status(self, code, message, reason="Error"):
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "message": message, "reason": reason, "code": code})

            def _route(self, verb):
                url = urlparse(self.path)
                match = PATH.match(url.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                if verb == "get" and match and not match["name"]:
                    verb = "watch" if str(query.get("watch")).lower() in ("true", "1") else "list"
                if match:
                    emu.requests.append((verb, match["plural"], match["sub"] or ""))
                if emu.faults:
                    status = emu.faults.pop(0)
                    return self._status(status, f"injected failure {status}")
                if not match:
                    return self._status(404, f"no route {url.path}", "NotFound")
                if (verb, match["plural"]) in emu.forbidden:
                    return self._status(403, f'{match["plural"]} is forbidden: User "test" cannot {verb} '
                                             f'resource "{match["plural"]}"', "Forbidden")
                key = (match["prefix"], match["ns"], match["plural"], match["name"])
                if verb == "list":
                    with emu.cond:
                        items = [copy.deepcopy(o) for k, o in emu.objects.items() if k[:3] == key[:3]]
                        return self._send(200, {"kind": "List", "metadata": {"resourceVersion": str(emu.rv)},
                                                "items": items})
                if verb == "watch":
                    return self._watch(key, query)
                if key not in emu.objects:
                    return self._status(404, f'{match["plural"]} "{match["name"]}" not found', "NotFound")
                if verb == "get":
                    return self._send(200, emu.get(*key))
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
                try:
                    return self._send(200, emu._patch(key, match["sub"], body, self.headers.get("Content-Type", "")))
                except (ValueError, KeyError, IndexError) as exc:
                    return self._status(409 if "conflict" in str(exc) else 422, str(exc), "Conflict")

            def _watch(self, key, query):
                name = None
                selector = query.get("fieldSelector", "")
                if selector.startswith("metadata.name="):
                    name = selector.split("=", 1)[1]
                since = int(query.get("resourceVersion") or 0)
                deadline = time.monotonic() + float(query.get("timeoutSeconds", 60))
                epoch = emu.watchers_epoch
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent = since
                try:
                    while time.monotonic() < deadline:
                        with emu.cond:
                            new = [e for e in emu.events if e[0] > sent and e[1][:3] == key[:3]
                                   and (name is None or e[1][3] == name)]
                            if not new:
                                emu.cond.wait(timeout=0.2)
                            if emu.watchers_epoch != epoch:
                                self.close_connection = True  # dropped: the stream ends mid-way
                                return
                        for rv, _, kind, obj in new:
                            line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                            self.wfile.flush()
                            sent = rv
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def do_GET(self):
                self._route("get")

            def do_PATCH(self):
                self._route("patch")

        return Handler
