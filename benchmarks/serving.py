"""Throughput and latency of `mlops serve` against `mlflow models serve --env-manager local`; and overload.

    python benchmarks/serving.py [--workers 2] [--seconds 10] [--concurrency 1 8 32]
    python benchmarks/serving.py --overload [--workers 2] [--seconds 60] [--concurrency 256]

Both servers load the same MLflow model (one-hot + HistGradientBoosting on the 13 features of the
worked example) with the same number of workers, and `hey` (Debian package `hey`) drives each with
single-row requests at each concurrency. Prints requests/s, p50/p95/p99 and errors per server, and the
ratios ours / MLflow. Targets on a 2-core machine: at least 5x MLflow's throughput at concurrency 8 and
10x at 32, p95 under 25 ms at concurrency 8, no errors.

--overload drives `mlops serve` alone far past what it can serve and prints the answers by status, the
p50/p99 of the 200s, and the resident memory of every server process at the start, its peak and the end.
Targets: no answer other than 200 and 503 (and every request answered), p99 of the 200s under 250 ms,
every process's memory within 50 MB of where it started.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(folder: Path) -> dict:
    """Train and save the model; return one request row."""
    sys.path.insert(0, str(ROOT))
    from components import contract
    from components.train import logic
    from mlops import datagen

    spec = contract.load(str(ROOT / "schemas" / "features_v2.json"))
    config = {"seed": 0, "test_size": 0.2, "estimator": "hist_gradient_boosting", "params": {"max_iter": 200}}
    result = logic.train(datagen.generate(20_000, seed=1), spec, config)
    logic.save_model(result, spec, str(folder))
    return json.loads(result.holdout[spec.feature_columns].head(1).to_json(orient="records"))[0]


def wait_until_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(url)


def hey(url: str, body: Path, concurrency: int, seconds: int) -> dict:
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(concurrency), "-m", "POST",
                          "-T", "application/json", "-D", str(body), url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {int(p): float(v) * 1000 for p, v in re.findall(r"(\d+)%+ in ([\d.]+) secs", out)}
    codes = dict((int(c), int(n)) for c, n in re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    errors = sum(n for c, n in codes.items() if c != 200) + len(re.findall(r"Error distribution", out))
    return {"rps": rps, "p50": pct.get(50), "p95": pct.get(95), "p99": pct.get(99), "errors": errors}


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        tree.append(todo.pop())
        todo += children.get(tree[-1], [])
    return tree


def metric_total(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


def overload(args, model: Path, body: Path, work: Path) -> int:
    """`mlops serve` under `hey` at args.concurrency for args.seconds, memory sampled every second."""
    port, metrics_port = free_port(), free_port()
    cmd = [str(BIN / "mlops"), "serve", "--port", str(port), "--metrics-port", str(metrics_port),
           "--workers", str(args.workers)]
    proc = subprocess.Popen(cmd, env={**os.environ, "MODEL_PATH": str(model), "MODEL_NAME": "bench"},
                            stdout=open(work / "overload.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1/models/bench:predict"
    try:
        wait_until_ready(f"http://127.0.0.1:{port}/v1/health/ready", proc)
        hey(url, body, 8, 3)  # warm-up
        start = {pid: rss_mb(pid) for pid in process_tree(proc.pid)}
        peak, done = dict(start), threading.Event()

        def sample():
            while not done.wait(1.0):
                for pid in start:
                    peak[pid] = max(peak[pid], rss_mb(pid) or 0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        before = metric_total(metrics_port, "model_inference_requests_total") \
            + metric_total(metrics_port, "model_inference_shed_total")
        out = subprocess.run(["hey", "-z", f"{args.seconds}s", "-c", str(args.concurrency[0]), "-m", "POST",
                              "-T", "application/json", "-D", str(body), "-o", "csv", url],
                             capture_output=True, text=True, check=True).stdout
        done.set()
        sampler.join()
        end = {pid: rss_mb(pid) for pid in start}
        received = metric_total(metrics_port, "model_inference_requests_total") \
            + metric_total(metrics_port, "model_inference_shed_total") - before
        shed = metric_total(metrics_port, "model_inference_shed_total")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    answers = [line.split(",") for line in out.splitlines()[1:] if line]
    codes = Counter(int(a[6]) for a in answers)
    ok = sorted(float(a[0]) * 1000 for a in answers if a[6] == "200")

    def pct(q):
        return ok[min(len(ok) - 1, int(q * len(ok)))] if ok else float("nan")

    print(f"overload: {args.seconds} s at concurrency {args.concurrency[0]}, {args.workers} workers, "
          f"{os.cpu_count()} cores, single-row requests")
    print(f"answers {len(answers)} ({len(answers) / args.seconds:.0f}/s): "
          + ", ".join(f"{c}: {n}" for c, n in sorted(codes.items()))
          + f"; requests the server received {received:.0f}, shed counted {shed:.0f}")
    print(f"200s: {len(ok) / args.seconds:.0f}/s, p50 {pct(0.5):.1f} ms, p99 {pct(0.99):.1f} ms")
    for pid in start:
        print(f"pid {pid}: RSS {start[pid]:.0f} MB at start, peak {peak[pid]:.0f} MB (+{peak[pid] - start[pid]:.0f}), "
              f"{end[pid] or 0:.0f} MB at the end")
    met = (set(codes) <= {200, 503} and received == len(answers) and pct(0.99) < 250
           and all(peak[p] - start[p] <= 50 for p in start))
    print("targets met" if met else "TARGETS MISSED")
    return 0 if met else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int)
    parser.add_argument("--concurrency", type=int, nargs="+")
    parser.add_argument("--overload", action="store_true", help="the overload run instead of the comparison")
    args = parser.parse_args()
    args.seconds = args.seconds or (60 if args.overload else 10)
    args.concurrency = args.concurrency or ([256] if args.overload else [1, 8, 32])
    if not shutil.which("hey"):
        print("benchmarks/serving.py needs the load generator hey: apt-get install hey", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="mlops-serving-bench-"))
    model = work / "model"
    row = train(model)
    if args.overload:
        (work / "ours.json").write_text(json.dumps({"instances": [row]}))
        return overload(args, model, work / "ours.json", work)
    ours_port, metrics_port, mlflow_port = free_port(), free_port(), free_port()
    (work / "ours.json").write_text(json.dumps({"instances": [row]}))
    (work / "mlflow.json").write_text(json.dumps({"dataframe_records": [row]}))
    servers = {
        "mlops serve": (
            [str(BIN / "mlops"), "serve", "--port", str(ours_port), "--metrics-port", str(metrics_port),
             "--workers", str(args.workers)],
            {"MODEL_PATH": str(model), "MODEL_NAME": "bench"},
            f"http://127.0.0.1:{ours_port}/v1/health/ready", f"http://127.0.0.1:{ours_port}/v1/models/bench:predict",
            work / "ours.json"),
        "mlflow models serve": (
            [str(BIN / "mlflow"), "models", "serve", "-m", str(model), "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(mlflow_port), "-w", str(args.workers)],
            {}, f"http://127.0.0.1:{mlflow_port}/ping", f"http://127.0.0.1:{mlflow_port}/invocations",
            work / "mlflow.json"),
    }
    results = {}
    for name, (cmd, env, ready, url, body) in servers.items():
        log = open(work / f"{name.split()[0]}.log", "w")
        path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"  # mlflow starts `uvicorn` from PATH
        proc = subprocess.Popen(cmd, env={**os.environ, "PATH": path, **env}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            wait_until_ready(ready, proc)
            hey(url, body, 4, 2)  # warm-up
            for c in args.concurrency:
                results[name, c] = hey(url, body, c, args.seconds)
                r = results[name, c]
                print(f"{name:<20} c={c:<3} {r['rps']:8.1f} rps  p50 {r['p50']:6.1f} ms  p95 {r['p95']:6.1f} ms  "
                      f"p99 {r['p99']:6.1f} ms  errors {r['errors']}", flush=True)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)

    print(f"\nsingle-row requests, {args.workers} workers each, {os.cpu_count()} cores, {args.seconds} s per level")
    print(f"{'concurrency':>11} {'ours rps':>9} {'mlflow rps':>10} {'ratio':>6} {'ours p95':>9} {'mlflow p95':>10}")
    for c in args.concurrency:
        ours, theirs = results["mlops serve", c], results["mlflow models serve", c]
        print(f"{c:>11} {ours['rps']:9.1f} {theirs['rps']:10.1f} {ours['rps'] / theirs['rps']:5.1f}x "
              f"{ours['p95']:7.1f}ms {theirs['p95']:8.1f}ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
