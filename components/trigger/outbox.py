"""The retraining outbox: the requests a trigger step records for the runner that ran it (the local runner).

A folder, one JSON file per request, its state in its name: `<id>.pending.json` (recorded by the trigger),
`<id>.claimed.json` (a runner took it, by an atomic rename: of two runners one wins), `<id>.settled.json` (the
runner's outcome). The id is the name a KFP run of the same request would have (`kfp_api.run_name`, keyed by the
sha256 of the source commit and the run's parameters), so a re-run of a step finds its own request. A request
counts as active (the trigger's cooldown holds) until it is settled; a claim older than the cooldown is a runner
that died, and is reported as failed instead of blocking retraining forever.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from components.kfp_api import PIPELINE, run_name
from components.source import SOURCE, commit

log = logging.getLogger(__name__)
STATES = ("pending", "claimed", "settled")


class OutboxError(ValueError):
    """The outbox is not a local folder, or a request in it is unreadable."""


@dataclass(frozen=True)
class Request:
    id: str
    commit: str
    parameters: dict  # the training run's parameters (data_uri, trigger_reason, ..., tracking_uri, model_name)
    requested_at: str


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds")


def _write(path: Path, doc: dict) -> None:
    """Write `doc` to `path` whole or not at all (a temporary file renamed over it)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
    os.replace(tmp, path)


class Outbox:
    """The outbox folder at `uri` (a local path: a rename must be atomic). As the trigger's submitter:
    `submit(parameters) -> id` and `status(id)`; as the runner's queue: `claim`, `settle`, `abandoned`."""

    def __init__(self, uri: str, stale_after_hours: float = 6.0, now=time.time):
        if "://" in uri and not uri.startswith("file://"):
            raise OutboxError(f"retraining outbox {uri!r}: must be a local folder (a claim is an atomic rename)")
        self.folder = Path(uri.removeprefix("file://"))
        self.stale_after_hours, self.now = stale_after_hours, now
        self.warnings: list[str] = []

    def path(self, request_id: str, state: str) -> Path:
        return self.folder / f"{request_id}.{state}.json"

    def state(self, request_id: str) -> str | None:
        return next((s for s in reversed(STATES) if self.path(request_id, s).is_file()), None)

    def read(self, request_id: str, state: str) -> dict:
        path = self.path(request_id, state)
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise OutboxError(f"{path}: unreadable retraining request: {exc}") from exc

    def submit(self, parameters: dict) -> str:
        """Record a request for a training run with `parameters`; a request with the same source commit and
        parameters, in any state, is that one: its id is returned and nothing is written."""
        source = commit(SOURCE)
        request_id = run_name(PIPELINE, source, parameters)
        if self.state(request_id) is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            _write(self.path(request_id, "pending"), {"id": request_id, "commit": source, "parameters": parameters,
                                                      "requested_at": _iso(self.now())})
        return request_id

    def status(self, request_id: str) -> str:
        """"pending", "running" (claimed), the settled run's status, "failed" for a claim older than
        `stale_after_hours` (with a warning, logged and kept in `warnings`), "unknown" when there is none."""
        state = self.state(request_id)
        if state == "settled":
            return self.read(request_id, "settled")["status"]
        if state == "claimed":
            stale = self._stale(request_id)
            return "failed" if stale else "running"
        return state or "unknown"

    def _stale(self, request_id: str) -> str | None:
        """Why the claim of `request_id` is taken for a dead runner's, or None while it is recent."""
        try:
            claimed_at = self.path(request_id, "claimed").stat().st_mtime
        except FileNotFoundError:
            return None
        hours = (self.now() - claimed_at) / 3600
        if hours < self.stale_after_hours:
            return None
        why = (f"retraining request {request_id} was claimed at {_iso(claimed_at)}, {hours:.1f} h ago, by a runner "
               f"that never settled it (it stopped or crashed): reported as failed after {self.stale_after_hours:g} h")
        log.warning(why)
        if why not in self.warnings:
            self.warnings.append(why)
        return why

    def pending(self) -> bool:
        """Whether a request waits to be claimed."""
        return any(self.folder.glob("*.pending.json"))

    def claim(self) -> list[Request]:
        """Take every pending request (oldest first): each one renamed to claimed, by this runner alone."""
        taken = []
        for path in sorted(self.folder.glob("*.pending.json"), key=lambda p: p.stat().st_mtime):
            request_id = path.name.removesuffix(".pending.json")
            claimed = self.path(request_id, "claimed")
            try:
                os.rename(path, claimed)
            except FileNotFoundError:  # another runner took it
                continue
            os.utime(claimed)  # the claim's time
            doc = self.read(request_id, "claimed")
            taken.append(Request(request_id, doc["commit"], doc["parameters"], doc["requested_at"]))
        return taken

    def settle(self, request_id: str, status: str, **outcome) -> dict:
        """Record how a claimed request ended (`status`: "succeeded" or "failed", and `outcome`)."""
        doc = {**self.read(request_id, "claimed"), "status": status, "settled_at": _iso(self.now()), **outcome}
        _write(self.path(request_id, "settled"), doc)
        self.path(request_id, "claimed").unlink()
        return doc

    def abandoned(self) -> list[dict]:
        """Settle as failed every claim older than `stale_after_hours` (its runner died); their records."""
        found = []
        for path in sorted(self.folder.glob("*.claimed.json")):
            request_id = path.name.removesuffix(".claimed.json")
            why = self._stale(request_id)
            if why:
                found.append(self.settle(request_id, "failed", error=why))
        return found
