"""Time the local training pipeline per step on generated transactions (default 100,000 rows).

    python benchmarks/training_pipeline.py [--rows 100000] [--repeat 1]

Runs `validate -> train -> evaluate -> gate -> register` under kfp.local with the configs of record,
in a fresh folder with its own SQLite MLflow store, and prints each step's wall time, the whole
run, and its ratio to the target (120 s on a 2-core machine).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 120.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1, help="runs, each on fresh data and a fresh registry")
    args = parser.parse_args()
    os.chdir(ROOT)
    from components import dataio
    from mlops import datagen, local
    from pipelines import defaults

    totals, per_step = [], {}
    for i in range(args.repeat):
        home = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
        data = home / "transactions.parquet"
        dataio.write_table(datagen.generate(args.rows, args.seed + i), str(data))
        settings = replace(defaults.load(), schema_uri=str(ROOT / defaults.load().schema_uri),
                           tracking_uri=local.local_tracking_uri(home))
        run = local.run_training(str(data), settings, home, commit="benchmark")
        if not run.gate["passed"]:
            print("warning: the gate failed on this data; register did not run", file=sys.stderr)
        totals.append(run.seconds)
        for step, sec in run.steps.items():
            per_step.setdefault(step, []).append(sec)

    print(f"\ntraining pipeline, kfp.local SubprocessRunner, {args.rows:,} rows, {os.cpu_count()} cores, "
          f"{args.repeat} run(s); median seconds")
    for step, secs in per_step.items():
        print(f"  {step:<16} {statistics.median(secs):7.1f}")
    total = statistics.median(totals)
    print(f"  {'whole run':<16} {total:7.1f}   target {TARGET_SECONDS:.0f} s -> "
          f"{total / TARGET_SECONDS:.2f} of the target ({'met' if total < TARGET_SECONDS else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
