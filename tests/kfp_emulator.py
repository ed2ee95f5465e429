"""A small stateful emulator of the KFP v2beta1 REST API over real HTTP, for the calls this project makes.

It keeps pipelines with their versions, experiments, runs and recurring runs as the API server returns them
(ids, display names, `created_at`), answers `filter` predicates (EQUALS on a field) and `sort_by`
("created_at desc"), and records every request (method, path, query, JSON body or uploaded file, Authorization
header) in `requests` so tests can assert exactly what was asked. `set_run_state(run_id, state)` plays the
backend. Uploads behave as the API server's multipart endpoints do: the file in the form field `uploadfile`;
`pipelines/upload` creates the pipeline and a first version named after it, `pipelines/upload_version` adds
a version; a name already taken is 409 Conflict. With `token`, a request without that bearer token is refused
(401 without credentials, 403 with others), as behind Kubeflow's authentication.
"""
from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import datetime, timedelta, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from tests.conftest import send_json

API = "/apis/v2beta1"


class KfpEmulator:
    def __init__(self, token: str | None = None):
        self.token = token
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self._clock = datetime(2026, 1, 1, tzinfo=timezone.utc)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _now(self) -> str:
        self._clock += timedelta(seconds=1)
        return self._clock.isoformat().replace("+00:00", "Z")

    # --- state a test sets up --------------------------------------------------------------------------
    def add_pipeline(self, name: str, versions: int = 1, namespace: str | None = None) -> str:
        pipeline_id = str(uuid.uuid4())
        self.pipelines[pipeline_id] = {"pipeline_id": pipeline_id, "display_name": name, "created_at": self._now()}
        if namespace:
            self.pipelines[pipeline_id]["namespace"] = namespace
        self.versions[pipeline_id] = []
        for _ in range(versions):
            self.add_version(pipeline_id)
        return pipeline_id

    def add_version(self, pipeline_id: str, name: str | None = None, **fields) -> str:
        version_id = str(uuid.uuid4())
        n = len(self.versions[pipeline_id]) + 1
        self.versions[pipeline_id].append({"pipeline_id": pipeline_id, "pipeline_version_id": version_id,
                                           "display_name": name or f"v{n}", "created_at": self._now(), **fields})
        return version_id

    def set_run_state(self, run_id: str, state: str) -> None:
        self.runs[run_id]["state"] = state

    def calls(self) -> list[tuple[str, str]]:
        return [(r["method"], r["path"]) for r in self.requests]

    # --- the API ---------------------------------------------------------------------------------------
    @staticmethod
    def _matches(item: dict, query: dict) -> bool:
        raw = query.get("filter", [""])[0]
        for predicate in (json.loads(raw).get("predicates", []) if raw else []):
            if predicate["operation"] not in ("EQUALS", 1):
                raise ValueError(f"unsupported filter operation {predicate['operation']}")
            if str(item.get(predicate["key"])) != str(predicate.get("stringValue", predicate.get("string_value"))):
                return False
        namespace = query.get("namespace", [None])[0]
        return namespace is None or item.get("namespace", namespace) == namespace

    @staticmethod
    def _sorted(items: list[dict], query: dict) -> list[dict]:
        sort_by = query.get("sort_by", [""])[0]
        if sort_by:
            key, _, order = sort_by.partition(" ")
            items = sorted(items, key=lambda i: i[key], reverse=order == "desc")
        size = int(query.get("page_size", ["0"])[0] or 0)
        return items[:size] if size else items

    def handle(self, method: str, path: str, query: dict, body, authorization: str | None = None
               ) -> tuple[int, dict]:
        if self.token and authorization != f"Bearer {self.token}":
            return (401, {"code": 16, "message": "Unauthenticated"}) if not authorization else \
                (403, {"code": 7, "message": "PermissionDenied"})
        with self.lock:
            if (method, path) == ("GET", f"{API}/healthz"):
                return 200, {"multi_user": False}
            if (method, path) == ("GET", f"{API}/pipelines"):
                found = [p for p in self.pipelines.values() if self._matches(p, query)]
                return 200, {"pipelines": self._sorted(found, query), "total_size": len(found)}
            if (method, path) == ("POST", f"{API}/pipelines/upload"):
                name, namespace = query["name"][0], query.get("namespace", [None])[0]
                if any(p["display_name"] == name and p.get("namespace") == namespace for p in self.pipelines.values()):
                    return 409, {"message": "Failed to create a pipeline and a pipeline version"}
                pipeline_id = self.add_pipeline(name, versions=0, namespace=namespace)
                self.add_version(pipeline_id, name, pipeline_spec=body)  # the first version is named after it
                return 200, self.pipelines[pipeline_id]
            if (method, path) == ("POST", f"{API}/pipelines/upload_version"):
                pipeline_id, name = query["pipelineid"][0], query["name"][0]
                if pipeline_id not in self.versions:
                    return 400, {"message": "Failed to create a pipeline version"}
                if any(v["display_name"] == name for v in self.versions[pipeline_id]):
                    return 409, {"message": "Failed to create a pipeline version"}
                description = query.get("description", [""])[0]
                version_id = self.add_version(pipeline_id, name, pipeline_spec=body, description=description)
                return 200, next(v for v in self.versions[pipeline_id] if v["pipeline_version_id"] == version_id)
            match = re.fullmatch(f"{API}/pipelines/([^/]+)/versions", path)
            if method == "GET" and match:
                if match[1] not in self.versions:
                    return 404, {"message": f"pipeline {match[1]} not found"}
                found = [v for v in self.versions[match[1]] if self._matches(v, query)]
                return 200, {"pipeline_versions": self._sorted(found, query), "total_size": len(found)}
            if (method, path) == ("GET", f"{API}/experiments"):
                found = [e for e in self.experiments.values() if self._matches(e, query)]
                return 200, {"experiments": found, "total_size": len(found)}
            if (method, path) == ("POST", f"{API}/experiments"):
                experiment = {**body, "experiment_id": str(uuid.uuid4()), "created_at": self._now(),
                              "storage_state": "AVAILABLE"}
                self.experiments[experiment["experiment_id"]] = experiment
                return 200, experiment
            if (method, path) == ("POST", f"{API}/runs"):
                run = {**body, "run_id": str(uuid.uuid4()), "created_at": self._now(), "state": "PENDING"}
                self.runs[run["run_id"]] = run
                return 200, run
            if (method, path) == ("GET", f"{API}/runs"):
                experiment = query.get("experiment_id", [None])[0]
                found = [r for r in self.runs.values()
                         if self._matches(r, query) and experiment in (None, r["experiment_id"])]
                return 200, {"runs": self._sorted(found, query), "total_size": len(found)}
            match = re.fullmatch(f"{API}/runs/([^/:]+)", path)
            if method == "GET" and match:
                run = self.runs.get(match[1])
                return (200, run) if run else (404, {"message": f"run {match[1]} not found"})
            if (method, path) == ("POST", f"{API}/recurringruns"):
                job = {**body, "recurring_run_id": str(uuid.uuid4()), "created_at": self._now(), "status": "ENABLED"}
                self.recurring[job["recurring_run_id"]] = job
                return 200, job
            if (method, path) == ("GET", f"{API}/recurringruns"):
                found = [j for j in self.recurring.values() if self._matches(j, query)]
                return 200, {"recurringRuns": found, "total_size": len(found)}
            match = re.fullmatch(f"{API}/recurringruns/([^/:]+)", path)
            if method == "DELETE" and match:
                return (200, {}) if self.recurring.pop(match[1], None) else (404, {"message": "not found"})
            return 404, {"message": f"{method} {path} is not emulated"}

    def _handler(self):
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _serve(self):
                url = urlparse(self.path)
                query = parse_qs(url.query)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body, upload = None, None
                if raw and self.headers.get("Content-Type", "").startswith("multipart/"):
                    message = BytesParser(policy=HTTP).parsebytes(
                        f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + raw)
                    parts = {part.get_param("name", header="content-disposition"): part
                             for part in message.iter_parts()}
                    upload = {field: part.get_filename() for field, part in parts.items()}
                    if "uploadfile" in parts:
                        body = parts["uploadfile"].get_content()
                        body = body.decode() if isinstance(body, bytes) else body
                elif raw:
                    body = json.loads(raw)
                emulator.requests.append({"method": self.command, "path": url.path, "query": query, "body": body,
                                          "upload": upload, "authorization": self.headers.get("Authorization")})
                try:
                    if upload is not None and body is None:
                        raise ValueError("Failed to read pipeline from file (no form field 'uploadfile')")
                    status, answer = emulator.handle(self.command, url.path, query, body,
                                                     self.headers.get("Authorization"))
                except ValueError as exc:
                    status, answer = 400, {"message": str(exc)}
                send_json(self, status, answer)

            do_GET = do_POST = do_DELETE = _serve

        return Handler
