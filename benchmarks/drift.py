"""Time the drift check on 1,000,000 logged rows x 30 features against the straightforward way.

    python benchmarks/drift.py [--rows 1000000] [--train-rows 200000] [--runs 3]

Writes the rows as the model server's inference log (hive hour partitions, 100,000 rows per file; 12 of the
30 features shifted), builds the reference profile from a training sample, then, each time in a fresh process,
times the check (read the window + score + decide) on one core, the libraries imported beforehand, and the same
check done straightforwardly: pandas reads every
file, and per feature `scipy.stats.ks_2samp` against the training sample plus `numpy.histogram` PSI on the
same quantile bin edges (value counts for categoricals). Prints each run and the medians: both times, the
ratio, whether the drifted features agree, and the process's peak memory after our check.
Targets: under 1.5 s, at least 10x, same verdicts, < 1 GB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.drift import inference_log, logic  # noqa: E402
from components.profile import build_profile, write_profile  # noqa: E402

KINDS = {**{f"n{i}": "numeric" for i in range(20)}, **{f"c{i}": "categorical" for i in range(6)},
         **{f"b{i}": "boolean" for i in range(4)}}
SHIFTED = {*(f"n{i}" for i in range(8)), "c0", "c1", "b0", "b1"}
CATS = np.array(["grocery", "travel", "electronics", "online", "fuel", "other"])
CONFIG = {"min_samples": 10000, "drift_threshold": 0.15, "drifted_share": 0.30, "window_hours": 24, "bins": 10}


def table(rows: int, seed: int, shifted=frozenset()) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = {}
    for name, kind in KINDS.items():
        moved = name in shifted
        if kind == "numeric":
            out[name] = rng.lognormal(0.5 if moved else 0.0, 1.0, rows) * 100
        elif kind == "categorical":
            p = np.array([0.3, 0.25, 0.15, 0.15, 0.1, 0.05])
            out[name] = CATS[rng.choice(6, rows, p=p[::-1] if moved else p)]
        else:
            out[name] = rng.random(rows) < (0.6 if moved else 0.2)
    return pd.DataFrame(out)


def prepare(work: Path, rows: int, train_rows: int) -> None:
    train = table(train_rows, 1)
    write_profile(build_profile(train, KINDS), str(work / "profile.json"))
    train.to_parquet(work / "train.parquet")
    now = pd.Timestamp(datetime.now(timezone.utc)).floor("h")
    per_file = 100_000
    for i in range(0, rows, per_file):
        part = table(min(per_file, rows - i), 100 + i, SHIFTED)
        at = now - pd.Timedelta(hours=(i // per_file) % 5)
        part = part.assign(prediction=0, probability=0.1, request_id="r", model_version="3", role="stable",
                           timestamp=at.tz_convert("UTC").as_unit("ms"))
        folder = work / "log" / "model=bench" / f"hour={at:%Y-%m-%dT%H}"
        folder.mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / f"part-{i}.parquet", index=False)


def straightforward(work: Path, profile: dict) -> list[str]:
    from scipy.stats import ks_2samp

    files = sorted((work / "log").rglob("*.parquet"))
    current = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    current = current[current["model_version"] == "3"]
    train = pd.read_parquet(work / "train.parquet")
    drifted = []
    for feature, spec in profile["features"].items():
        if spec["kind"] == "numeric":
            x = current[feature].dropna().to_numpy()
            ks_2samp(train[feature].to_numpy(), x)
            lo, hi = min(x.min(), train[feature].min()), max(x.max(), train[feature].max())
            counts, _ = np.histogram(x, bins=[lo, *spec["edges"], hi])
            ref, cur = np.array(spec["shares"]), counts / len(current)
        else:
            shares = current[feature].value_counts(normalize=True)
            ref = np.array(spec["shares"])
            cur = np.array([shares.get(v, 0.0) for v in spec["values"]])
        ref, cur = np.maximum(ref, logic.EPSILON), np.maximum(cur, logic.EPSILON)
        ref, cur = ref / ref.sum(), cur / cur.sum()
        if np.sum((cur - ref) * np.log(cur / ref)) > CONFIG["drift_threshold"]:
            drifted.append(feature)
    return drifted


def measure(work: Path) -> None:
    """One cold run of both, on one core, in this fresh process; prints its figures as one JSON line. The
    libraries both ways use are imported first, so neither timing counts module loading."""
    import fsspec  # noqa: F401
    import pyarrow.compute  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import scipy.stats  # noqa: F401

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    profile = json.loads((work / "profile.json").read_text())
    start = time.perf_counter()
    table_, _ = inference_log.read_log(str(work / "log"), "bench", "3", KINDS, CONFIG["window_hours"])
    read = time.perf_counter() - start
    result, _ = logic.evaluate(table_, profile, CONFIG)
    ours = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del table_
    start = time.perf_counter()
    theirs_drifted = straightforward(work, profile)
    theirs = time.perf_counter() - start
    print(json.dumps({"read": read, "ours": ours, "theirs": theirs, "peak_mb": peak_mb, "rows": result["samples"],
                      "drifted": len(result["drifted_features"]),
                      "same": sorted(theirs_drifted) == sorted(result["drifted_features"])}))


def report(runs: list[dict]) -> None:
    """Each run, then the medians: a shared machine's timings of one cold run vary by a factor of two."""
    for r in runs:
        print(f"run: ours read {r['read']:.2f} s + score and decide {r['ours'] - r['read']:.2f} s = {r['ours']:.2f} s; "
              f"straightforward {r['theirs']:.2f} s; peak RSS {r['peak_mb']:.0f} MB")
    med = {k: statistics.median(r[k] for r in runs) for k in ("read", "ours", "theirs", "peak_mb")}
    ratio = statistics.median(r["theirs"] / r["ours"] for r in runs)
    print(f"rows {runs[0]['rows']:,} x {len(KINDS)} features, {runs[0]['drifted']} drifted (expected {len(SHIFTED)}); "
          f"same drifted features in every run: {all(r['same'] for r in runs)}")
    print(f"median of {len(runs)}: ours read {med['read']:.2f} s, whole check {med['ours']:.2f} s (target 1.5 s); "
          f"straightforward {med['theirs']:.2f} s; ratio {ratio:.1f}x (target 10x); peak RSS {med['peak_mb']:.0f} MB "
          f"(target 1024)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3, help="cold runs, each in a fresh process (default 3)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the timed child process
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        prepare(Path(tmp), args.rows, args.train_rows)
        os.sync()  # the files on disk before the timing: no writeback of them competes with the read
        runs = [json.loads(subprocess.run([sys.executable, __file__, "--measure", tmp], check=True,
                                          capture_output=True, text=True).stdout.strip().splitlines()[-1])
                for _ in range(args.runs)]
    report(runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
