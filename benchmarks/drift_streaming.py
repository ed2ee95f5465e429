"""Peak memory of the drift check streaming the inference log, against the window read in one table.

    python benchmarks/drift_streaming.py [--rows 20000000] [--dir DIR]

Writes `--rows` rows of the worked example's 13 features (mlops.datagen, chunks of 1,000,000 rows with their own
seeds, the last half of the chunks with drift=0.5) as the model server logs them: hour partitions within the
24 h before the time of writing, files of 100,000 rows, model_version "3", with prediction, probability,
request_id, row, role and timestamp. Written once into DIR (default: a folder in the temp dir, kept for re-runs)
with the reference profile of datagen.generate(200000, seed=1); the check's window ends at the time of writing,
so a re-run reads the same rows. Then, each in a fresh process with the libraries imported first: the streaming
check (logic.evaluate on inference_log.batches), the in-memory one (read_log, then evaluate), and a bare process
importing the same modules. Prints seconds, peak RSS (raw, and net of the bare process) and whether both results
(decision, samples, scores, ks, drifted features) are identical.
Target: streaming peak <= 1 GB at 20,000,000 rows x 13 features, identical decision and scores.
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL, VERSION = "bench", "3"
CHUNK_ROWS, FILE_ROWS = 1_000_000, 100_000
CONFIG = {"min_samples": 10000, "drift_threshold": 0.2, "drifted_share": 0.3, "window_hours": 24, "bins": 10}
COMPARED = ("decision", "samples", "scores", "ks", "drifted_features")
TARGET_MB, TARGET_ROWS = 1024, 20_000_000


def generate(work: Path, rows: int) -> None:
    """The log and the profile, unless a complete earlier run left them (meta.json is written last)."""
    import numpy as np
    import pandas as pd

    from components import contract
    from components.profile import build_profile, write_profile
    from mlops import datagen

    meta = work / "meta.json"
    if meta.exists():
        written = json.loads(meta.read_text())
        if written["rows"] != rows:
            sys.exit(f"{work} holds {written['rows']:,} rows, not {rows:,}: pass another --dir")
        print(f"reusing {work} ({rows:,} rows written {written['now']})")
        return
    shutil.rmtree(work / "log", ignore_errors=True)
    kinds = contract.load(str(ROOT / "schemas" / "features_v2.json")).features
    write_profile(build_profile(datagen.generate(200_000, seed=1)[list(kinds)], kinds, bins=10),
                  str(work / "profile.json"))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    top = now.replace(minute=0, second=0)
    now_ms = int(now.timestamp() * 1000)
    chunks = math.ceil(rows / CHUNK_ROWS)
    drifted = chunks - chunks // 2  # the last half: 30 % of chunks at drift=0.5 leaves the rule below its share
    start, file_no = time.perf_counter(), 0
    for c in range(chunks):
        n = min(CHUNK_ROWS, rows - c * CHUNK_ROWS)
        frame = datagen.generate(n, seed=1000 + c, drift=0.5 if c >= chunks - drifted else 0.0)[list(kinds)]
        rng = np.random.default_rng(c)
        for lo in range(0, n, FILE_ROWS):
            part = frame.iloc[lo:lo + FILE_ROWS].reset_index(drop=True)
            hour = top - timedelta(hours=file_no % 24)  # hour partitions within the 24 h up to `now`
            first = int(hour.timestamp() * 1000)
            stamps = first + rng.integers(0, min(3_600_000, now_ms - first + 1), len(part))
            part = part.assign(prediction=(rng.random(len(part)) < 0.02).astype("int64"),
                               probability=rng.random(len(part)),
                               request_id=[f"req-{file_no}-{i}" for i in range(len(part))],
                               row=np.zeros(len(part), dtype="int64"), model_version=VERSION, role="stable",
                               timestamp=pd.to_datetime(stamps, unit="ms", utc=True).astype("datetime64[ms, UTC]"))
            folder = work / "log" / f"model={MODEL}" / f"hour={hour:%Y-%m-%dT%H}"
            folder.mkdir(parents=True, exist_ok=True)
            part.to_parquet(folder / f"part-{file_no:06d}.parquet", index=False)
            file_no += 1
        print(f"  chunk {c + 1}/{chunks} written ({time.perf_counter() - start:.0f} s)", flush=True)
    meta.write_text(json.dumps({"rows": rows, "now": now.isoformat(), "drifted_chunks": drifted,
                                "chunks": chunks}))


def measure(mode: str, work: Path) -> None:
    """In this fresh process: import the libraries, run one way (or none: "bare"), print one JSON line."""
    import fsspec  # noqa: F401
    import numpy  # noqa: F401
    import pyarrow  # noqa: F401
    import pyarrow.compute  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from components.drift import inference_log, logic

    out = {"mode": mode}
    if mode != "bare":
        profile = json.loads((work / "profile.json").read_text())
        now = datetime.fromisoformat(json.loads((work / "meta.json").read_text())["now"])
        kinds = {f: s["kind"] for f, s in profile["features"].items()}
        args = (str(work / "log"), MODEL, VERSION, kinds, CONFIG["window_hours"], now)
        start = time.perf_counter()
        if mode == "streaming":
            skipped = []
            result, _ = logic.evaluate(inference_log.batches(*args, skipped=skipped), profile, CONFIG)
        else:
            table, skipped = inference_log.read_log(*args)
            result, _ = logic.evaluate(table, profile, CONFIG)
        out.update(seconds=time.perf_counter() - start, skipped=len(skipped),
                   result={k: result[k] for k in COMPARED})
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def first_difference(a, b, where: str = "") -> str | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in [*a, *(k for k in b if k not in a)]:
            found = first_difference(a.get(key), b.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    return None if a == b and type(a) is type(b) else f"{where}: streaming {a!r} != in memory {b!r}"


def run(mode: str, work: Path) -> dict:
    done = subprocess.run([sys.executable, __file__, "--measure", mode, "--dir", str(work)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=TARGET_ROWS)
    parser.add_argument("--dir", type=Path, help="where the log is written once (default: a folder in the temp dir)")
    parser.add_argument("--measure", choices=("streaming", "memory", "bare", "generate"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure == "generate":
        generate(args.dir, args.rows)
        return 0
    if args.measure:
        measure(args.measure, args.dir)
        return 0
    work = args.dir or Path(tempfile.gettempdir()) / f"drift_streaming_{args.rows}"
    work.mkdir(parents=True, exist_ok=True)
    # in a process of its own: a child's ru_maxrss starts from its parent's RSS at fork, so this one stays small
    if subprocess.run([sys.executable, __file__, "--measure", "generate", "--rows", str(args.rows),
                       "--dir", str(work)]).returncode:
        return 1
    bare, streaming, memory = (run(mode, work) for mode in ("bare", "streaming", "memory"))
    meta = json.loads((work / "meta.json").read_text())
    rows = streaming["result"]["samples"]
    print(f"\n{args.rows:,} rows logged x 13 features ({meta['drifted_chunks']} of {meta['chunks']} chunks drifted), "
          f"{rows:,} in the window; decision {streaming['result']['decision']}, "
          f"drifted {streaming['result']['drifted_features']}; files skipped {streaming['skipped']}/"
          f"{memory['skipped']}")
    print(f"{'':<28}{'seconds':>9}{'peak RSS MB':>13}{'net MB':>9}")
    print(f"{'bare (imports only)':<28}{'':>9}{bare['peak_mb']:>13.0f}{'':>9}")
    for name, r in (("streaming (batches)", streaming), ("in memory (read_log)", memory)):
        print(f"{name:<28}{r['seconds']:>9.2f}{r['peak_mb']:>13.0f}{r['peak_mb'] - bare['peak_mb']:>9.0f}")
    difference = first_difference(streaming["result"], memory["result"])
    print("results: " + (difference or "identical") + " (decision, samples, scores, ks, drifted_features)")
    met = streaming["peak_mb"] <= TARGET_MB and difference is None and rows == args.rows
    print(f"target: streaming peak <= {TARGET_MB} MB at {TARGET_ROWS:,} rows x 13 features, identical decision "
          f"and scores: {'met' if met else 'NOT met'} at {args.rows:,} rows (peak {streaming['peak_mb']:.0f} MB raw"
          + ("" if args.rows >= TARGET_ROWS else f"; run --rows {TARGET_ROWS} for the target itself") + ")")
    return 0 if difference is None else 1


if __name__ == "__main__":
    sys.exit(main())
