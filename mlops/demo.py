"""`mlops demo`: the whole loop on one machine with the embedded defaults, in one command.

generate data -> train, gate, register and deploy v1 (kfp.local, MLflow on SQLite) -> `mlops serve` v1 behind
the demo's switch, inference log on -> clean traffic -> drift check: no retraining -> drifted traffic -> drift
check: retraining submitted once -> v2 trained on fresh drifted labelled data, gated, registered, deployed (v1
archived) -> a second server on v2; the switch sends new requests to it, the first one drains and stops ->
summary.

Every process the demo starts runs in a process group of its own: the servers, and the pipeline runs with their
step processes. Ctrl-C reaches the demo alone, which stops the traffic and the servers at once and lets a step
under way finish (so the registry is never left half-written) before no further step starts; a second Ctrl-C
stops the pipeline at once.
"""
from __future__ import annotations

import http.client
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

HOME = Path(".mlops/demo")
MARKER = "MLOPS_DEMO"  # a file in the state folder (it may be cleared) and an environment variable of every process
SEED = 11
DRIFT = 0.3           # datagen drift of the drifted traffic and of the retraining data: 6 of 13 features drift
ROWS_PER_REQUEST = (1, 40)
BACKGROUND_RATE = 5   # requests per second while retraining and across the switch


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM."""


STOP = threading.Event()  # set by the first Ctrl-C; the demo stops at its next checkpoint


def checkpoint() -> None:
    if STOP.is_set():
        raise Interrupted("interrupted")


def pause(seconds: float) -> None:
    if STOP.wait(seconds):
        raise Interrupted("interrupted")


# --- progress ---------------------------------------------------------------------------------------------

class Progress:
    """Step lines with the elapsed time; while traffic runs, a live count of requests."""

    def __init__(self, steps: int):
        self.start, self.steps, self.step = time.monotonic(), steps, 0
        self.tty = sys.stdout.isatty()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def say(self, text: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {text}", flush=True)

    def next(self, name: str) -> None:
        checkpoint()
        self.step += 1
        self.say(f"step {self.step}/{self.steps}: {name}")

    def live(self, traffic: "Traffic", stop: threading.Event) -> threading.Thread:
        """A thread printing the request count every second (in place on a terminal, every 5 s otherwise)."""
        def run():
            last = None
            while not stop.wait(1.0 if self.tty else 5.0):
                line = traffic.counts()
                if line != last:
                    print(f"\r           {line}" if self.tty else f"           {line}", end="" if self.tty else "\n",
                          flush=True)
                    last = line
            if self.tty and last:
                print(flush=True)
        thread = threading.Thread(target=run, name="demo-progress", daemon=True)
        thread.start()
        return thread


# --- processes --------------------------------------------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(pid: int, grace: float = 30.0) -> None:
    """SIGTERM to the process group `pid` leads; SIGKILL to what is left after `grace` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if not wait_group(pid, grace):
        kill_group(pid)


def wait_group(pid: int, timeout: float) -> bool:
    """True once no process of the group is left (reaping the leader if it is our child)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_group(pid, 10.0)


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

def bodies(frame, model_name: str, seed: int) -> list[tuple[int, bytes]]:
    """The rows as KServe v1 requests of 1 to 40 rows each: (rows, JSON body)."""
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    sizes = np.random.default_rng(seed).integers(*ROWS_PER_REQUEST, endpoint=True, size=len(records))
    out, i = [], 0
    for size in sizes:
        if i >= len(records):
            break
        chunk = records[i:i + size]
        out.append((len(chunk), json.dumps({"instances": chunk}).encode()))
        i += size
    return out


class Traffic:
    """Threads sending prediction requests to the switch, counting what was served and what failed."""

    def __init__(self, address: tuple[str, int], model_name: str):
        self.address, self.path = address, f"/v1/models/{model_name}:predict"
        self.lock = threading.Lock()
        self.served = self.failed = self.rows = 0
        self.errors: list[str] = []

    def counts(self) -> str:
        return f"requests: {self.served:,} served, {self.failed:,} failed ({self.rows:,} rows)"

    def _send(self, conn: http.client.HTTPConnection, rows: int, body: bytes) -> http.client.HTTPConnection:
        try:
            conn.request("POST", self.path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            ok, why = response.status == 200, f"HTTP {response.status}: {data[:200]!r}"
        except OSError as exc:
            ok, why = False, f"{type(exc).__name__}: {exc}"
            conn.close()
            conn = http.client.HTTPConnection(*self.address, timeout=60)
        with self.lock:
            if ok:
                self.served, self.rows = self.served + 1, self.rows + rows
            else:
                self.failed += 1
                self.errors.append(why)
        return conn

    def send(self, requests: list[tuple[int, bytes]], threads: int = 4, stop: threading.Event | None = None,
             rate: float | None = None) -> None:
        """Send every request once (`threads` at a time), or, with `stop`, in a loop at `rate` per second
        until it is set."""
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
                    conn = self._send(conn, *requests[i % len(requests)])
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


# --- pipeline runs in a process group of their own --------------------------------------------------------

def _stop_between_steps() -> None:
    """In the pipeline process: SIGTERM lets the step under way finish, then no further step starts."""
    from kfp.local import subprocess_task_handler as handler

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    run_step = handler.run_local_subprocess

    def guarded(*args, **kwargs):
        if stopping.is_set():
            raise KeyboardInterrupt("stopped between steps")
        return run_step(*args, **kwargs)

    handler.run_local_subprocess = guarded


class Pipelines:
    """Runs `func(*args)` (a kfp.local pipeline run) in a process (`python -m mlops.demo`) leading a session
    and process group of its own, with every step process it starts."""

    def __init__(self, home: Path):
        self.home, self.pid = home, None

    def run(self, func, *args):
        result = self.home / "logs" / f"pipeline-{time.time_ns()}.pickle"
        process = subprocess.Popen([sys.executable, "-m", "mlops.demo", str(result)], stdin=subprocess.PIPE,
                                   start_new_session=True)
        self.pid = process.pid
        process.stdin.write(pickle.dumps((func, args)))
        process.stdin.close()
        while process.poll() is None:
            pause(0.2)
        self.pid = None
        if not result.is_file():
            raise DemoError(f"the pipeline process ended ({process.returncode}) without a result")
        status, value = pickle.loads(result.read_bytes())
        result.unlink()
        if status == "error":
            raise DemoError(value)
        return value

    def stop(self, at_once: bool, progress: Progress | None = None) -> None:
        """Stop a run under way: at a step boundary (the group ends when the step under way has), or at once."""
        pid = self.pid
        if pid is None:
            return
        if not at_once:
            if progress:
                progress.say("waiting for the pipeline step under way to finish (Ctrl-C again: stop it at once)")
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if wait_group(pid, 600):
                self.pid = None
                return
        kill_group(pid)
        self.pid = None


def train(data_uri: str, settings, home: str, parameters: dict | None = None):
    from mlops import local

    return local.run_training(data_uri, settings, Path(home), parameters=parameters)


def retrain(result: dict, data_uri: str, settings, home: str) -> tuple[dict, object]:
    """The drift check's result through the trigger (a local training run, at most once): (its outcome, the
    training run it submitted or None)."""
    from components.trigger import logic as trigger
    from components.trigger.submit import LocalSubmitter

    submitter = LocalSubmitter(settings, Path(home))
    outcome = trigger.trigger(result, tracking_uri=settings.tracking_uri, model_name=settings.model_name,
                              training_data_uri=data_uri, submit=submitter.submit, status=submitter.status)
    return outcome, (submitter.runs[0] if submitter.runs else None)


# --- the loop ---------------------------------------------------------------------------------------------

@dataclass
class Record:
    """What the summary shows."""
    trainings: list[tuple[str, object]] = field(default_factory=list)   # (label, TrainingRun)
    checks: list[tuple[str, dict, dict]] = field(default_factory=list)   # (label, result, retraining)


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


def features(rows: int, seed: int, drift: float = 0.0):
    """Requests' rows: the generator's transactions without the label (never the training rows)."""
    from mlops import datagen

    return datagen.generate(rows, seed, drift).drop(columns=["is_fraud"])


def check(log_uri: str, settings, config: dict, since: float, expected: int) -> dict:
    """The drift check of the rows logged since `since` (a Unix time): its window starts there. Waits
    (up to 30 s) until the servers' log writers have flushed the `expected` rows."""
    from datetime import datetime, timezone

    from components.drift import logic

    deadline = time.monotonic() + 30
    while True:
        now = datetime.now(timezone.utc)
        window = {**config, "window_hours": (now.timestamp() - since) / 3600}
        result, _, _ = logic.check(log_uri, settings.tracking_uri, settings.model_name, window, now=now)
        if result["samples"] >= expected or time.monotonic() > deadline:
            return result
        pause(0.5)


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


def said(label: str, result: dict, retraining: dict, record: Record, progress: Progress) -> None:
    record.checks.append((label, result, retraining))
    top = ", ".join(f"{f} {result['scores'][f]:.2f}" for f in result["drifted_features"][:4])
    progress.say(f"drift check of version {result['model_version']}: {result['decision']}: {result['reason']}"
                 + (f" ({top}{', ...' if len(result['drifted_features']) > 4 else ''})" if top else ""))
    progress.say("retraining: " + (f"submitted, run {retraining['run']}" if retraining["submitted"]
                                   else retraining["reason"]))


def run_loop(home: Path, rows: int, switch: Switch, progress: Progress, record: Record, pipelines: Pipelines,
             servers: list[Server], min_samples: int | None, config: str | None, gates: str | None) -> Traffic:
    settings, drift_config = settings_for(home, config, gates)
    name, log_uri = settings.model_name, str((home / "inference-log").resolve())
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
    live(progress, traffic, lambda: traffic.send(bodies(features(traffic_rows, SEED + 1), name, 1)))
    progress.next("drift check of the clean traffic")
    fresh = labelled(home, "training-drifted", rows, SEED + 3, DRIFT)  # labelled data the loop may retrain on
    result = check(log_uri, settings, drift_config, clean_since, traffic.rows)
    said("clean traffic", result, pipelines.run(retrain, result, fresh, settings, str(home))[0], record, progress)

    # the drifted window starts after the last clean answer, and the check keeps only rows logged from then on
    time.sleep(0.05)
    drifted_since = time.time()
    time.sleep(0.05)
    progress.next(f"drifted traffic: {traffic_rows:,} transactions with drift {DRIFT} "
                  f"(window of the next check starts now)")
    served = traffic.rows
    live(progress, traffic, lambda: traffic.send(bodies(features(traffic_rows, SEED + 2, DRIFT), name, 2)))
    progress.next("drift check of the drifted traffic, retraining on fresh drifted labelled data when due")
    result = check(log_uri, settings, drift_config, drifted_since, traffic.rows - served)
    stop = threading.Event()
    steady = bodies(features(2000, SEED + 4, DRIFT), name, 4)
    background = threading.Thread(target=traffic.send, args=(steady,), kwargs={"threads": 2, "stop": stop,
                                                                               "rate": BACKGROUND_RATE},
                                  name="demo-background-traffic", daemon=True)
    background.start()
    ticker = progress.live(traffic, stop)
    try:
        progress.say(f"traffic goes on at {BACKGROUND_RATE} requests/s while the loop retrains")
        retraining, run = pipelines.run(retrain, result, fresh, settings, str(home))
        said("drifted traffic", result, retraining, record, progress)
        if not retraining["submitted"]:
            raise DemoError(f"retraining was not submitted: {retraining['reason']}")
        v2 = trained("v2", run, record, progress)

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
    return traffic


def live(progress: Progress, traffic: Traffic, send) -> None:
    stop = threading.Event()
    ticker = progress.live(traffic, stop)
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
    lines += ["", "drift checks"]
    for label, result, retraining in record.checks:
        top = ", ".join(f"{f} {result['scores'][f]:.2f}" for f in result["drifted_features"])
        lines.append(f"  {label}: version {result['model_version']}, {result['samples']:,} rows, {result['decision']}"
                     f", drifted share {result['drifted_share']:.2f}" + (f" ({top})" if top else ""))
        outcome = f"submitted, run {retraining['run']}" if retraining["submitted"] else retraining["reason"]
        lines.append(f"    retraining: {outcome}")
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
    progress, record, pipelines, servers = Progress(8), Record(), Pipelines(home), []
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


def _pipeline_process(result: str) -> None:
    """The pipeline process: runs the call pickled on stdin, writes ("ok", value) or ("error", message) to
    `result`. Ctrl-C is the demo's to handle; SIGTERM stops it between steps."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stop_between_steps()
    func, args = pickle.load(sys.stdin.buffer)
    try:
        outcome = ("ok", func(*args))
    except BaseException as exc:  # noqa: BLE001 - reported to the demo, which raises it there
        outcome = ("error", f"{type(exc).__name__}: {exc}")
    Path(result).write_bytes(pickle.dumps(outcome))


if __name__ == "__main__":
    _pipeline_process(sys.argv[1])
