"""Time and size the local training pipeline per step on generated transactions (default 100,000 rows).

    python benchmarks/training_pipeline.py [--rows 10000000] [--memory-limit 16G] [--data-dir DIR]

Generates `--rows` transactions a million at a time into one Parquet file (never the whole table in one frame;
kept in `--data-dir` for the next run), then runs `validate -> train -> evaluate -> gate -> register -> deploy`
under kfp.local with the configs of record, in a fresh folder with its own SQLite MLflow store, and prints per
step the wall time, the peak resident memory each step reports (components.memory) and the bytes per row; the
whole run; the holdout's ROC AUC and average precision; and the ratios to the targets (every step <= 4 GB and
the run <= 5 min at 10 million rows).

`--memory-limit 16G` runs the pipeline in a memory cgroup of that limit (cgroup v1 `memory.limit_in_bytes`, or
v2 `memory.max`, created under /sys/fs/cgroup: root, or a delegated cgroup, is needed), which every step's
process inherits; a step over it is killed by the kernel, and the run fails. The cgroup's own peak (page cache
included) and its count of hits on the limit are printed.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 1_000_000
TARGET_SECONDS, TARGET_STEP_MB, AT_ROWS = 300.0, 4096.0, 10_000_000
UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def generate(rows: int, seed: int, path: Path) -> None:
    """`rows` transactions, CHUNK at a time (each chunk its own seed), as row groups of one Parquet file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops import datagen

    tmp = path.with_suffix(".partial")
    writer = None
    for i, start in enumerate(range(0, rows, CHUNK)):
        table = pa.Table.from_pandas(datagen.generate(min(CHUNK, rows - start), seed * 1000 + i),
                                     preserve_index=False)
        writer = writer or pq.ParquetWriter(tmp, table.schema)
        writer.write_table(table)
    writer.close()
    tmp.rename(path)


class MemoryCgroup:
    """A memory cgroup with a limit, this process moved into it (its children follow)."""

    def __init__(self, limit: int):
        v1 = Path("/sys/fs/cgroup/memory")
        self.v1 = (v1 / "memory.limit_in_bytes").exists() or (v1 / "cgroup.procs").exists()
        base = v1 if self.v1 else Path("/sys/fs/cgroup/unified") if Path("/sys/fs/cgroup/unified").exists() \
            else Path("/sys/fs/cgroup")
        self.path = base / f"mlops-bench-{os.getpid()}"
        self.path.mkdir()
        (self.path / ("memory.limit_in_bytes" if self.v1 else "memory.max")).write_text(str(limit))
        (self.path / "cgroup.procs").write_text(str(os.getpid()))
        self.how = (f"cgroup v{'1' if self.v1 else '2'} {self.path}, "
                    f"{'memory.limit_in_bytes' if self.v1 else 'memory.max'} = {limit:,} bytes")

    def peak_and_hits(self) -> tuple[float, str]:
        if self.v1:
            return (int((self.path / "memory.max_usage_in_bytes").read_text()) / 2**20,
                    f"memory.failcnt {(self.path / 'memory.failcnt').read_text().strip()}")
        peak = self.path / "memory.peak"
        events = dict(line.split() for line in (self.path / "memory.events").read_text().splitlines())
        return (int(peak.read_text()) / 2**20 if peak.exists() else float("nan"),
                f"memory.events max {events.get('max')}, oom_kill {events.get('oom_kill')}")


def size(text: str) -> int:
    return int(float(text[:-1]) * UNITS[text[-1].upper()]) if text[-1].upper() in UNITS else int(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "mlops-bench-data",
                        help="where the generated table is kept between runs")
    parser.add_argument("--memory-limit", type=size, help="run the pipeline in a memory cgroup of this limit "
                                                          "(bytes, or with K/M/G: 16G)")
    args = parser.parse_args()
    os.chdir(ROOT)
    from mlops import local
    from pipelines import defaults

    data = args.data_dir / f"transactions-{args.rows}-seed{args.seed}.parquet"
    if not data.exists():
        args.data_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        generate(args.rows, args.seed, data)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - start:.0f} s: {data}", file=sys.stderr)
    cgroup = MemoryCgroup(args.memory_limit) if args.memory_limit else None
    home = Path(tempfile.mkdtemp(prefix="mlops-bench-"))
    settings = replace(defaults.load(), schema_uri=str(ROOT / defaults.load().schema_uri),
                       tracking_uri=local.local_tracking_uri(home), deployment_target="local")
    run = local.run_training(str(data), settings, home, commit="benchmark")
    metrics = run.evaluation["metrics"] if run.evaluation else {}

    print(f"\ntraining pipeline, kfp.local SubprocessRunner, {args.rows:,} rows, {os.cpu_count()} cores"
          + (f", in {cgroup.how}" if cgroup else ""))
    print(f"  {'step':<16} {'seconds':>8} {'peak MB':>9} {'bytes/row':>10}")
    for step, seconds in run.steps.items():
        peak = run.peaks.get(step)
        shown = f"{peak:9,.0f} {peak * 2**20 / args.rows:10,.0f}" if peak else f"{'-':>9} {'-':>10}"
        print(f"  {step:<16} {seconds:8.1f} {shown}")
    top = max(run.peaks.values(), default=float("nan"))
    print(f"  {'whole run':<16} {run.seconds:8.1f} {top:9,.0f} {top * 2**20 / args.rows:10,.0f}  (largest step)")
    print(f"holdout: ROC AUC {metrics.get('roc_auc', float('nan')):.5f}, average precision "
          f"{metrics.get('average_precision', float('nan')):.5f}; gate {'PASSED' if run.gate['passed'] else 'FAILED'}")
    scale = args.rows / AT_ROWS
    budget = TARGET_SECONDS * scale
    print(f"targets at {AT_ROWS:,} rows, the time scaled linearly to these {args.rows:,}: largest step "
          f"{top / TARGET_STEP_MB:.2f} of {TARGET_STEP_MB:,.0f} MB, run {run.seconds / budget:.2f} of {budget:.0f} s")
    if cgroup:
        peak, hits = cgroup.peak_and_hits()
        print(f"cgroup peak {peak:,.0f} MB (page cache included), {hits}")
    print(f"run folder: {home}")
    return 0 if run.gate["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
