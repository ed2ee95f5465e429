"""`mlops demo`: the loop itself (its steps, what it records, the summary) and its entry point, `main`.

The whole loop on one machine with the embedded defaults, in one command:
generate data -> train, gate, register and deploy v1 (kfp.local, MLflow on SQLite) -> `mlops serve` v1 behind
the demo's switch, inference log on -> clean traffic, its outcomes ingested -> monitoring run (drift check and
live performance): no retraining -> drifted traffic, its outcomes ingested -> monitoring run: retraining
submitted once -> v2 trained on the drifted window's served rows labelled by their outcomes (`mlops dataset
from-log`'s table) and fresh labelled rows, gated, registered, deployed (v1 archived) -> a second server on v2;
the switch sends new requests to it, the first one drains and stops -> the outcomes of the traffic since, live
performance per version -> summary.
"""
from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from mlops.demo import performance as perf
from mlops.demo.processes import STOP, DemoError, Interrupted, Pipelines, Progress, pause, stop_group
from mlops.demo.traffic import Server, Switch, Traffic, bodies, start_server, transactions

HOME = Path(".mlops/demo")
MARKER = "MLOPS_DEMO"  # a file in the state folder (it may be cleared) and an environment variable of every process
SEED = 11
DRIFT = 0.3           # datagen drift of the drifted traffic and of the retraining data: 6 of 13 features drift
BACKGROUND_RATE = 5   # requests per second while retraining and across the switch


# --- pipeline calls (run in the pipeline process) ---------------------------------------------------------

def train(data_uri: str, settings, home: str, parameters: dict | None = None):
    from mlops import local

    return local.run_training(data_uri, settings, Path(home), parameters=parameters)


def drift_check(log_uri: str, outcomes_uri: str, settings, config: dict, window_end: str, training_data: str,
                home: str):
    """The one monitoring path (mlops.local.run_drift_check): the pipeline (drift check, live performance on
    the outcomes, judged by the gates file's `live:` section), then the retraining it recorded in the outbox,
    run with `settings`; its DriftCheckRun."""
    from components.gates import check_live
    from mlops import local
    from pipelines import defaults

    # the live gates as the gates file has them: the demo lowers no minimum. In the default run (20,000 rows)
    # the clean check's window holds 203 frauds and the drifted check's 845, over the record's 200, and the
    # verdicts are the record's; smaller runs answer insufficient_labels, which is what the minimum is for (on a
    # few dozen frauds a live recall gate would fail on noise, and the clean check would retrain)
    drift = defaults.DriftDefaults(tracking_uri=settings.tracking_uri, model_name=settings.model_name,
                                   config=config, resources=settings.resources,
                                   live=check_live(settings.quality_gates.get("live")))
    return local.run_drift_check(log_uri, drift, Path(home), {"window_end": window_end, "outcomes_uri": outcomes_uri,
                                                              "training_data_uri": training_data}, training=settings)


# --- the loop ---------------------------------------------------------------------------------------------

@dataclass
class Record:
    """What the summary shows."""
    trainings: list[tuple[str, object]] = field(default_factory=list)   # (label, TrainingRun)
    checks: list[tuple[str, dict, dict | None]] = field(default_factory=list)  # (label, result, retraining)
    data: dict[str, tuple[str, str]] = field(default_factory=dict)  # phase -> (retraining table, why that one)
    after: tuple[str, dict] | None = None  # (when, live performance) measured after the switch


def prepare(home: Path) -> None:
    """A fresh state folder: a demo's earlier state is cleared; any other non-empty folder is refused."""
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).is_file():
            raise DemoError(f"{home} is not empty and holds no earlier demo's state; choose another --home")
        shutil.rmtree(home)
    (home / "logs").mkdir(parents=True)
    (home / MARKER).write_text("state of `mlops demo`; cleared by the next run\n")


def settings_for(home: Path, config: str | None, gates: str | None):
    """The training settings: the configs of record of the source tree (or the files given), this registry,
    deployment target local."""
    from mlops import local
    from pipelines import defaults

    root = defaults.SOURCE
    settings = defaults.load(Path(config or root / defaults.CONFIG), Path(gates or root / defaults.GATES),
                             root / defaults.BASELINE, drift=root / defaults.DRIFT)
    drift = defaults.read_drift(root / defaults.DRIFT)
    return defaults.for_local_runs(settings, tracking_uri=local.local_tracking_uri(home)), drift


def labelled(home: Path, name: str, rows: int, seed: int, drift: float = 0.0) -> str:
    from components import dataio
    from mlops import datagen

    path = home / "data" / f"{name}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    dataio.write_table(datagen.generate(rows, seed, drift), str(path))
    return str(path.resolve())


def logged(log_uri: str, model_name: str, since: float) -> int:
    """Rows of `model_name` the servers' log writers have written with a time from `since` (a Unix time) on."""
    import pandas as pd

    folder = Path(log_uri) / f"model={model_name}"
    try:
        stamps = pd.read_parquet(folder, columns=["timestamp"])["timestamp"]
    except (OSError, ValueError):  # nothing written yet, or a file being written
        return 0
    return int((stamps >= pd.Timestamp(since, unit="s", tz="UTC")).sum())


def window(log_uri: str, model_name: str, config: dict, since: float, expected: int) -> tuple[dict, str]:
    """The drift config and window end of a check of the rows logged since `since` (a Unix time): the window
    starts there and ends once the servers' log writers have flushed the `expected` rows (waiting up to 30 s)."""
    deadline = time.monotonic() + 30
    while logged(log_uri, model_name, since) < expected and time.monotonic() < deadline:
        pause(0.5)
    end = datetime.now(timezone.utc)
    return {**config, "window_hours": (end.timestamp() - since) / 3600}, end.isoformat()


def trained(label: str, run, record: Record, progress: Progress) -> str:
    record.trainings.append((label, run))
    gate = "PASSED" if run.gate["passed"] else "FAILED"
    if not run.gate["passed"] or run.registration is None or run.deployment is None:
        failed = [g["metric"] for g in run.gate["gates"] if g["verdict"] == "fail"]
        raise DemoError(f"{label}: quality gate {gate} ({', '.join(failed)}); nothing to deploy. Step logs: {run.log}")
    version = run.registration["version"]
    progress.say(f"{label}: {run.rows:,} rows in {run.seconds:.0f} s, quality gate {gate}, registered as version "
                 f"{version}, deployed locally: {run.deployment['message']}")
    return version


def retraining_line(retraining: dict | None) -> str:
    if retraining is None:
        return "not due"
    return f"submitted, request {retraining['run']}" if retraining["submitted"] else retraining["reason"]


def said(label: str, run, record: Record, progress: Progress) -> None:
    result = run.result
    record.checks.append((label, result, run.retraining))
    top = ", ".join(f"{f} {result['scores'][f]:.2f}" for f in result["drifted_features"][:4])
    progress.say(f"drift check of version {result['model_version']}: {result.get('drift_decision', result['decision'])}"
                 f": {result['reason']}"
                 + (f" ({top}{', ...' if len(result['drifted_features']) > 4 else ''})" if top else ""))
    for line in perf.lines(result["performance"]) if result.get("performance") else ():
        progress.say(f"live performance: {line}")
    progress.say(f"monitoring decision: {result['decision']} (reasons: {perf.reasons(result)})")
    progress.say(f"retraining: {retraining_line(run.retraining)}")


def run_loop(home: Path, rows: int, switch: Switch, progress: Progress, record: Record, pipelines: Pipelines,
             servers: list[Server], min_samples: int | None, config: str | None, gates: str | None) -> Traffic:
    from components import contract

    settings, drift_config = settings_for(home, config, gates)
    name, log_uri = settings.model_name, str((home / "inference-log").resolve())
    truth = perf.Truth(home, log_uri, settings, contract.load(settings.schema_uri), rows)
    samples = min_samples or min(drift_config["min_samples"], rows // 2)
    if samples != drift_config["min_samples"]:
        progress.say(f"min_samples {samples} for {rows:,} rows (configs/drift.yaml says "
                     f"{drift_config['min_samples']}; --rows {2 * drift_config['min_samples']} or more keeps it)")
    drift_config = {**drift_config, "min_samples": samples}
    traffic_rows = samples + samples // 10

    progress.next(f"generate data: {rows:,} labelled transactions")
    first = labelled(home, "training-v1", rows, SEED)

    progress.next("train, gate, register and deploy v1 (training pipeline on kfp.local)")
    v1 = trained("v1", pipelines.run(train, first, settings, str(home)), record, progress)

    progress.next(f"serve v1: mlops serve on the production alias, inference log on, behind the switch at "
                  f"http://127.0.0.1:{switch.server_address[1]}")
    switch.to(start_server(home, settings.tracking_uri, name, v1, log_uri, servers))
    switch.serving = threading.Thread(target=switch.serve_forever, name="demo-switch", daemon=True)
    switch.serving.start()
    traffic = Traffic(switch.server_address, name)
    progress.say(f"version {v1} ready (pid {servers[-1].process.pid}, port {servers[-1].port}; log {servers[-1].log})")

    progress.next(f"clean traffic: {traffic_rows:,} new transactions from the generator")
    clean_since = time.time()
    live(progress, traffic, lambda: traffic.send(bodies(*transactions(traffic_rows, SEED + 1), 1), "clean"))
    progress.next("monitoring run of the clean traffic: drift check, and live performance on its outcomes")
    config, end = window(log_uri, name, drift_config, clean_since, traffic.rows)
    record.data["clean"] = truth.ready(traffic, "clean", clean_since, end, SEED + 5, 0.0, progress)
    data = record.data["clean"][0]
    said("clean traffic", pipelines.run(drift_check, log_uri, truth.uri, settings, config, end, data, str(home)),
         record, progress)

    # the drifted window starts after the last clean answer, and the check keeps only rows logged from then on
    time.sleep(0.05)
    drifted_since = time.time()
    time.sleep(0.05)
    progress.next(f"drifted traffic: {traffic_rows:,} transactions with drift {DRIFT} "
                  f"(window of the next check starts now)")
    served = traffic.rows
    live(progress, traffic, lambda: traffic.send(bodies(*transactions(traffic_rows, SEED + 2, DRIFT), 2), "drifted"))
    progress.next("monitoring run of the drifted traffic, retraining on its served rows labelled by their outcomes "
                  "when due")
    config, end = window(log_uri, name, drift_config, drifted_since, traffic.rows - served)
    record.data["drifted"] = truth.ready(traffic, "drifted", drifted_since, end, SEED + 3, DRIFT, progress)
    data = record.data["drifted"][0]
    stop = threading.Event()
    steady = bodies(*transactions(2000, SEED + 4, DRIFT), 4)
    background = threading.Thread(target=traffic.send, args=(steady, "steady"),
                                  kwargs={"threads": 2, "stop": stop, "rate": BACKGROUND_RATE},
                                  name="demo-background-traffic", daemon=True)
    background.start()
    ticker = progress.live(traffic.counts, stop)
    try:
        progress.say(f"traffic goes on at {BACKGROUND_RATE} requests/s while the loop retrains")
        run = pipelines.run(drift_check, log_uri, truth.uri, settings, config, end, data, str(home))
        said("drifted traffic", run, record, progress)
        if not (run.retraining or {}).get("submitted"):
            raise DemoError(f"retraining was not submitted: {retraining_line(run.retraining)}")
        (retrained,) = run.retrainings
        if retrained.run is None:
            raise DemoError(f"retraining {retrained.request} failed: {retrained.error}")
        v2 = trained("v2", retrained.run, record, progress)

        progress.next("serve v2 without dropping a request: a second mlops serve, then the switch moves to it")
        switch.to(start_server(home, settings.tracking_uri, name, v2, log_uri, servers))
        progress.say(f"switch: new requests go to version {v2}; version {v1}'s requests drained, stopping it")
        old = servers.pop(0)
        stop_group(old.process.pid)
        old.process.wait()
        pause(3)  # traffic keeps flowing to version 2
    finally:
        stop.set()
        background.join(30)
        ticker.join(10)

    progress.next("the outcomes of the traffic since, and the live performance of each version")
    _, end = window(log_uri, name, drift_config, clean_since, traffic.rows)
    progress.say(perf.ingest(home, traffic, truth.spec, name, end, "steady"))
    measured = perf.measure(log_uri, truth.uri, settings, datetime.fromisoformat(end))
    record.after = end, measured
    for line in perf.lines(measured):
        progress.say(f"live performance: {line}")
    return traffic


def live(progress: Progress, traffic: Traffic, send) -> None:
    stop = threading.Event()
    ticker = progress.live(traffic.counts, stop)
    try:
        send()
    finally:
        stop.set()
        ticker.join(10)
    progress.say(traffic.counts())


# --- summary ----------------------------------------------------------------------------------------------

def summary(home: Path, record: Record, traffic: Traffic | None, switch: Switch, seconds: float) -> str:
    from mlflow import MlflowClient

    from components import lifecycle
    from mlops import local

    tracking_uri = local.local_tracking_uri(home)
    client = MlflowClient(tracking_uri)
    lines = ["", f"Summary ({seconds:.0f} s)", "", "model versions"]
    lines.append(f"  {'version':<8} {'lifecycle':<11} {'trigger_reason':<26} why")
    for mv in sorted(client.search_model_versions(), key=lambda mv: int(mv.version)):
        why = "; ".join(f"{h['state']}: {h['reason']}" for h in lifecycle.history(mv))
        reason = mv.tags.get("trigger_reason", "")
        lines.append(f"  {mv.version:<8} {lifecycle.state(mv) or '-':<11} {reason:<26} {why}")
    lines += ["", "quality gates"]
    for label, run in record.trainings:
        gates = {g["metric"]: g for g in run.gate["gates"]}
        shown = ", ".join(f"{m} {gates[m]['value']:.3f}" for m in ("roc_auc", "average_precision", "accuracy",
                                                                   "recall", "latency_p95_ms")
                          if m in gates and gates[m]["value"] is not None)
        lines.append(f"  {label}: {'PASSED' if run.gate['passed'] else 'FAILED'} ({shown})")
        lines += [f"    decision of {line}" for line in run.decision_lines()]
    lines += ["", "monitoring runs: drift check, live performance (served rows joined with their outcomes), "
                  "decision"]
    for label, result, retraining in record.checks:
        top = ", ".join(f"{f} {result['scores'][f]:.2f}" for f in result["drifted_features"])
        lines.append(f"  {label}: version {result['model_version']}, {result['samples']:,} rows, "
                     f"{result.get('drift_decision', result['decision'])}, drifted share {result['drifted_share']:.2f}"
                     + (f" ({top})" if top else ""))
        if result.get("performance"):
            lines += [f"    {row}" for row in perf.table(result["performance"])]
            lines.append(f"    {perf.verdict_line(result['performance'])}")
        lines.append(f"    decision: {result['decision']} (reasons: {perf.reasons(result)}); retraining: "
                     f"{retraining_line(retraining)}")
    if record.after:
        end, measured = record.after
        lines.append(f"  after the switch (live performance alone, at {end}):")
        lines += [f"    {row}" for row in perf.table(measured)]
        lines.append(f"    {perf.verdict_line(measured)}")
    if "drifted" in record.data:
        path, why = record.data["drifted"]
        lines += ["", f"v2 trained on {path}:", f"  {why}"]
    if traffic is not None:
        by_version = ", ".join(f"version {v}: {n:,}" for v, n in sorted(switch.served.items()))
        lines += ["", f"requests: {traffic.served:,} served ({by_version}), {traffic.failed:,} failed, "
                      f"{traffic.rows:,} rows"]
        lines += [f"  failed: {e}" for e in traffic.errors[:5]]
    mlflow = Path(sys.executable).parent / "mlflow"
    lines += ["", f"state: {home}", f"MLflow UI: {mlflow} ui --backend-store-uri {tracking_uri}"]
    return "\n".join(lines)


# --- entry point ------------------------------------------------------------------------------------------

def main(home: Path, rows: int, port: int, min_samples: int | None = None, config: str | None = None,
         gates: str | None = None) -> int:
    try:
        switch = Switch(port)
    except OverflowError:
        print(f"mlops demo: port {port} is not a TCP port (0-65535): choose one with --port", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"mlops demo: port {port} is in use ({exc.strerror}): choose a free one with --port", file=sys.stderr)
        return 2
    home = home.resolve()
    os.environ[MARKER] = str(home)  # every process the demo starts carries it
    # one BLAS/OpenMP thread per process: on two cores shared with the server and the traffic, spinning
    # OpenMP threads would make the training slow and the gate's latency measure the contention
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    progress, record, pipelines, servers = Progress(9), Record(), Pipelines(home), []
    traffic, code = None, 0

    def interrupted(signum, frame):
        if STOP.is_set():  # the second one
            pipelines.stop(at_once=True)
        STOP.set()

    signal.signal(signal.SIGINT, interrupted)
    signal.signal(signal.SIGTERM, interrupted)
    print(f"mlops demo: the whole loop on this machine; state in {home}", flush=True)
    try:
        prepare(home)
        traffic = run_loop(home, rows, switch, progress, record, pipelines, servers, min_samples, config, gates)
    except Interrupted:
        progress.say("interrupted: stopping every process the demo started")
        code = 130
    except DemoError as exc:
        print(f"mlops demo: {exc}", file=sys.stderr)
        code = 1
    finally:
        if switch.serving is not None:
            switch.shutdown()
        for server in servers:
            stop_group(server.process.pid)
        pipelines.stop(at_once=False, progress=progress)
        switch.server_close()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if code == 0:
        print(summary(home, record, traffic, switch, progress.elapsed()), flush=True)
        if traffic.failed:
            code = 1
    elif code == 130:
        progress.say("stopped; no process of the demo is left")
    return code
