"""`mlops demo`: the truth about what it served, what the monitoring run makes of it, and what it retrains on.

The traffic generator knows the label of every transaction it sends (datagen draws it with the features); no
request carries it. Once a phase's requests are served, the demo writes their outcomes (request_id as sent in
X-Request-ID, row the position in the request) and ingests them (components.outcomes) into `<home>/outcomes`,
observed at the window end the next check pins, as if the truth had arrived by then: the monitoring run's
live-performance step joins them with the inference log and measures each version.

A retraining trains on the check's window of served rows labelled by their outcomes, built by the code of
`mlops dataset from-log` (components.performance.join), with as many fresh labelled rows of the generator as
v1 trained on when it holds fewer (retraining_data says why).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mlops.demo.processes import DemoError

OUTCOMES = "outcomes"  # under the demo's home
SHOWN = ("precision", "recall", "expected_cost")


# --- outcomes ---------------------------------------------------------------------------------------------

def ingest(home: Path, traffic, spec, model_name: str, observed_at: str, phase: str) -> str:
    """Write the outcomes of the requests `traffic` served since the last call to `<home>/data/outcomes-<phase>.csv`
    and ingest them into `<home>/outcomes`, observed at `observed_at`; the progress line."""
    from components import outcomes

    frame = traffic.outcomes(spec.label).assign(observed_at=observed_at)
    path = home / "data" / f"outcomes-{phase}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    try:
        (done,) = outcomes.ingest({str(path): frame}, str(home / OUTCOMES), model_name, spec)
    except outcomes.OutcomesError as exc:
        raise DemoError(f"outcomes of the {phase} traffic: {exc}") from exc
    return (f"outcomes: {done['rows']:,} rows of {frame['request_id'].nunique():,} served requests ingested "
            f"into {home / OUTCOMES} (observed at {observed_at}; file {path.name})")


# --- retraining data --------------------------------------------------------------------------------------

def from_log(log_uri: str, outcomes_uri: str, model_name: str, spec, start: datetime, end: datetime):
    """The rows served in [start, end] with an outcome, as `mlops dataset from-log --until END --window-days
    (END - START)` writes them (no implicit negatives: every served row has an outcome here), validated."""
    from components import outcomes
    from components.performance import join
    from components.validate.logic import ValidationFailed, validate

    truth, _ = outcomes.latest(outcomes_uri, model_name, spec.label, since=start)
    found = join.join(log_uri, model_name, truth, spec.label, start, end, end, lambda version: None,
                      extra_columns=tuple(spec.feature_columns))
    table = join.labelled_table(found, spec, None)
    try:
        validate(table, spec, source=f"served rows of {model_name} in {log_uri}")
    except ValidationFailed as failed:
        raise DemoError(f"the served rows do not meet the contract: {failed}") from None
    return table


def retraining_data(home: Path, phase: str, served, spec, rows: int, seed: int, drift: float) -> tuple[str, str]:
    """(path, why) of the table a retraining of this check trains on: the `served` rows (from_log) alone when
    they are `rows` (v1's table) or more, else with `rows` fresh labelled rows of the generator (`drift` as the
    traffic's) after them. The served part is also written as `served-<phase>.parquet`.

    Why: the gates compare v2 with v1 on v2's holdout, and the drift moved the features, not how fraud follows
    from them: more rows make the better model. In the default run (20,000 rows, 11,000 served in the drifted
    window) v2 failed the roc_auc, average-precision and expected-cost gates trained on the served rows alone
    (expected cost 0.290 against v1's 0.193) and on them topped up to 20,000 (0.307 against 0.208), and passed
    them all on the served rows followed by 20,000 fresh rows (0.255 against 0.257), training about as long: the
    grid search samples at most 20,000 rows (configs/production.yaml)."""
    import pandas as pd

    from components import dataio
    from mlops import datagen

    data = home / "data"
    dataio.write_table(served, str(data / f"served-{phase}.parquet"))
    positives = int((served[spec.label] == spec.positive_class).sum())
    what = f"{len(served):,} served rows labelled by their outcomes ({positives:,} frauds)"
    if len(served) >= rows:
        table, why = served, f"{what} alone: as many rows as v1 trained on ({rows:,}) or more"
    else:
        added = datagen.generate(rows, seed, drift)[list(served.columns)]
        table = pd.concat([served, added.astype(served.dtypes.to_dict())], ignore_index=True)
        why = (f"{what} + {rows:,} fresh labelled rows with drift {drift:g}: served rows alone are fewer than "
               f"v1's {rows:,}, and on fewer rows v2 loses to v1 at the gates")
    path = data / f"retraining-{phase}.parquet"
    dataio.write_table(table, str(path))
    return str(path.resolve()), why


@dataclass
class Truth:
    """Where the demo's outcomes go, and what a retraining's table is built with."""
    home: Path
    log_uri: str
    settings: object  # the training settings (model name, registry, training config, gates)
    spec: object  # the feature contract
    rows: int  # rows of v1's table: fresh labelled rows added to fewer served rows (retraining_data)

    @property
    def uri(self) -> str:
        return str((self.home / OUTCOMES).resolve())

    def ready(self, traffic, phase: str, since: float, end: str, seed: int, drift: float, progress) -> tuple[str, str]:
        """Before a check: ingest the outcomes of the requests served since the last call, observed at `end`
        (the check's pinned window end), then write the table a retraining of the check trains on (the rows
        served from `since` to `end` labelled by their outcomes, retraining_data); (its path, why that one)."""
        name = self.settings.model_name
        progress.say(ingest(self.home, traffic, self.spec, name, end, phase))
        served = from_log(self.log_uri, self.uri, name, self.spec, datetime.fromtimestamp(since, timezone.utc),
                          datetime.fromisoformat(end))
        path, why = retraining_data(self.home, phase, served, self.spec, self.rows, seed, drift)
        progress.say(f"retraining data of this check: {why}")
        return path, why


# --- live performance -------------------------------------------------------------------------------------

def measure(log_uri: str, outcomes_uri: str, settings, now: datetime) -> dict:
    """The monitoring run's live-performance measure (components.performance.logic.check) of every version,
    run here, without the drift check: its `performance`."""
    from components.gates import check_live
    from components.performance import logic

    try:
        return logic.check(log_uri, outcomes_uri, settings.tracking_uri, settings.model_name,
                           check_live(settings.quality_gates.get("live")), now=now)
    except logic.PerformanceError as exc:
        raise DemoError(f"live performance: {exc}") from exc


def _value(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def version_line(version: str, entry: dict) -> str:
    """`version 1: 1,100 of 1,100 logged rows labelled (23 frauds), precision 0.155, recall 0.652, expected
    cost 0.256`: n/a for a metric the labels do not give."""
    metrics = entry.get("metrics") or {}
    shown = ", ".join(f"{name.replace('_', ' ')} {_value(metrics.get(name))}" for name in SHOWN)
    return (f"version {version}: {entry.get('labelled', 0):,} of {entry.get('logged', 0):,} logged rows labelled "
            f"({entry.get('positives', 0):,} frauds), {shown}")


def verdict_line(performance: dict) -> str:
    return f"production version {performance['model_version']}: {performance['decision']}: {performance['reason']}"


def reasons(result: dict) -> str:
    return ", ".join(result.get("reasons") or []) or "none"


def lines(performance: dict) -> list[str]:
    """Per version its live figures, then the production version's verdict."""
    versions = performance["versions"]
    return ([version_line(v, e) for v, e in sorted(versions.items(), key=lambda item: int(item[0]))]
            + [verdict_line(performance)])


def table(performance: dict) -> list[str]:
    """The summary's rows of one measurement: a header, a row per version."""
    out = [f"{'version':<8} {'labelled':>9} {'logged':>9} {'frauds':>7} {'precision':>10} {'recall':>7} "
           f"{'expected_cost':>14}"]
    for version, entry in sorted(performance["versions"].items(), key=lambda item: int(item[0])):
        metrics = entry.get("metrics") or {}
        out.append(f"{version:<8} {entry.get('labelled', 0):>9,} {entry.get('logged', 0):>9,} "
                   f"{entry.get('positives', 0):>7,} {_value(metrics.get('precision')):>10} "
                   f"{_value(metrics.get('recall')):>7} {_value(metrics.get('expected_cost')):>14}")
    return out
