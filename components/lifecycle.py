"""A model version's lifecycle in the registry: the one place that moves aliases and lifecycle tags.

staged (passed the gates) -> canary (serving a share of traffic under analysis) -> production (promoted
after every analysis passed) -> archived (replaced by a newer production version); or canary -> rejected
(analysis failed, rolled back). Aliases `staged`, `canary` and `production` point at the versions in
those states. Each version carries the tag `lifecycle` (its state) and `lifecycle_history` (a JSON list
of {state, time, reason, pipeline_run}), so the registry alone tells why each version is where it is.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from components.registry import version_by_alias

STATES = ("staged", "canary", "production", "archived", "rejected")
ALIASED = ("staged", "canary", "production")  # states with an alias of the same name
TAG, HISTORY_TAG = "lifecycle", "lifecycle_history"
HISTORY_LIMIT = 50  # entries kept in the tag (MLflow tag values are limited in size)


def state(mv) -> str | None:
    """The lifecycle state recorded on a model version, if any."""
    return mv.tags.get(TAG)


def history(mv) -> list[dict]:
    try:
        return json.loads(mv.tags.get(HISTORY_TAG) or "[]")
    except json.JSONDecodeError:
        return []


def _settle(write, done) -> None:
    """Run an idempotent registry write. Two runs writing the same alias or tag at once can make the
    server's insert-or-update fail for one of them; that one is fine if the other wrote the same value."""
    try:
        write()
    except MlflowException:
        if not done():
            raise


def move(client: MlflowClient, name: str, version: str, new_state: str, reason: str,
         pipeline_run: str = "") -> None:
    """Record `new_state` on the version (tag and history) and move the aliases to match.

    Idempotent: moving a version into the state it is in, for the same reason, changes nothing.
    """
    if new_state not in STATES:
        raise ValueError(f"unknown lifecycle state {new_state!r}; states: {list(STATES)}")
    mv = client.get_model_version(name, str(version))
    past = history(mv)
    if state(mv) == new_state and past and past[-1].get("reason") == reason:
        return
    entry = {"state": new_state, "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "reason": reason, "pipeline_run": pipeline_run}
    version = str(version)
    # aliases first, tags last: a crash in between leaves the old state recorded, and a retry redoes it all
    for alias in ALIASED:
        if alias == new_state:
            _settle(lambda: client.set_registered_model_alias(name, alias, version),
                    lambda: aliased_version(client, name, alias) == version)
        elif alias in mv.aliases:
            _settle(lambda: client.delete_registered_model_alias(name, alias),
                    lambda: aliased_version(client, name, alias) != version)
    for tag, value in ((HISTORY_TAG, json.dumps((past + [entry])[-HISTORY_LIMIT:])), (TAG, new_state)):
        _settle(lambda: client.set_model_version_tag(name, version, tag, value),
                lambda: client.get_model_version(name, version).tags.get(tag) == value)


def aliased_version(client: MlflowClient, name: str, alias: str) -> str | None:
    mv = version_by_alias(client, name, alias)
    return None if mv is None else str(mv.version)
