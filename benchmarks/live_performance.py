"""Time and size the live performance check (the inference log joined with late outcomes, measured per model
version) against the plain pandas way, on a generated month of log.

    python benchmarks/live_performance.py [--rows 1000000] [--outcomes 500000] [--runs 3] [--dir DIR]
    python benchmarks/live_performance.py --rows 1000000,10000000 [--profile]

The log: `--rows` rows over 30 days, as the model server writes them: hive hour partitions
(`model=bench/hour=<YYYY-MM-DDTHH>/part-*.parquet`), files of at most `--file-rows` (100,000) rows, more
traffic by day than by night; the 13 features of `mlops.datagen.generate` (drawn hour by hour, never the whole
log in one frame), prediction, probability, request_id (128 random bits in hex, as serving/app.py makes them),
row, model_version ("1" for 90 % of requests, "2" for 10 %), role and timestamp (ms, UTC). One request in ten
has 2 to 5 rows (row 0..k); 2 % of requests are retried: the same rows logged again 0.2 to 60 s later (in the
next hour's file when the hour has ended). The probability follows the row's is_fraud (about 2 % positive),
version 2 a little less sharply.

The outcomes: about `--outcomes` rows in the layout `components.outcomes.ingest` writes
(`model=bench/date=<YYYY-MM-DD of observed_at>/part-*.parquet`: request_id, row, is_fraud, observed_at), one file
per date: logged rows' true is_fraud observed hours to days after the prediction, 1 % orphans (request ids
never logged), 0.2 % keys given a second, conflicting label at another time (the latest counts).

Then, each in a fresh process after one untimed warm-up run of it, with the libraries imported beforehand:
  check: components.outcomes.latest, components.performance.join.join and logic.per_version (a stub for the
         registry: threshold 0.05, costs 25:1 for every version; no implicit negatives) over the window
         [now - 30 days, now];
  pandas: pd.read_parquet of the log folder and of the outcomes (the same columns), the window, the latest
         outcome and the last logged row per key (sort + drop_duplicates), merge on (request_id, row),
         scikit-learn's metrics per version;
  bare:  a process that only imports the same modules (its peak RSS is subtracted to give each way's own).
Both ways must agree on every version's logged and flagged rows (every logged row of the window, retries
included, as the check counts them), labelled and positive rows (the last logged row per key and version),
precision, recall, roc_auc and average_precision, and on orphan and conflicting outcomes: the run exits 1
naming what differs. Peak RSS is the child's VmHWM (/proc/self/status), not ru_maxrss: Linux carries the
parent's RSS at the fork into a child's ru_maxrss, and the parent has just generated the data.

Prints per size: the stages of the check, the medians of `--runs` runs, and a table of seconds, peak RSS and
the pandas/check ratios. Targets: 1,000,000 logged rows + 500,000 outcomes in under 1.5 s and under 1 GB peak;
at 10,000,000 logged rows a peak within 20 % of the peak at 1,000,000. `--profile` adds a cProfile of one
check run per size. `--dir` keeps the generated data (one folder per size) and reuses it on the next run.
"""
from __future__ import annotations

import argparse
import binascii
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mlops import datagen  # noqa: E402

MODEL = "bench"
LABEL = datagen.LABEL
POSITIVE = 1
DAYS = 30
HOURS = DAYS * 24
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
THRESHOLD, COSTS = 0.05, (25.0, 1.0)
VERSION_SHARES = {"1": 0.9, "2": 0.1}
ROLES = {"1": "stable", "2": "canary"}
SHARPNESS = {"1": 3.0, "2": 2.5}  # how far a fraud's logit moves up: version 2 ranks a little worse
MULTI_SHARE, RETRY_SHARE = 0.10, 0.02  # requests of 2..5 rows; requests logged twice
ORPHAN_SHARE, CONFLICT_SHARE = 0.01, 0.002  # of the outcomes
LOG_COLUMNS = ["request_id", "row", "model_version", "timestamp", "probability"]
OUTCOME_COLUMNS = ["request_id", "row", LABEL, "observed_at"]
GENERATOR = 1  # bump when the generated data changes: a kept --dir is regenerated
TARGET_SECONDS, TARGET_MB, TARGET_GROWTH = 1.5, 1024, 1.20
COMPARED = ("logged", "flagged", "labelled", "positives")
METRICS = ("precision", "recall", "roc_auc", "average_precision")


# ---------------------------------------------------------------------------------------------------- the data

def _ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n request ids: 128 random bits as 32 hex digits, as Python strings."""
    return np.frombuffer(binascii.hexlify(rng.bytes(16 * n)), dtype="S32").astype("U32").astype(object)


def _hour_rows(rows: int) -> np.ndarray:
    """Logged rows per hour of the month, summing to `rows`: twice as many at 14:00 as at 02:00."""
    hour = np.arange(HOURS) % 24
    weight = 1 + np.cos((hour - 14) / 24 * 2 * np.pi) / 3
    exact = rows * weight / weight.sum()
    counts = np.floor(exact).astype(np.int64)
    counts[np.argsort(counts - exact)[: rows - counts.sum()]] += 1
    return counts


def _requests(rng: np.random.Generator, base: int) -> np.ndarray:
    """Sizes of requests holding `base` rows in all: most of one row, MULTI_SHARE of 2 to 5."""
    sizes = np.where(rng.random(base) < MULTI_SHARE, rng.integers(2, 6, base), 1)
    total = np.cumsum(sizes)
    k = int(np.searchsorted(total, base)) + 1
    sizes = sizes[:k].copy()
    sizes[-1] -= total[k - 1] - base
    return sizes


def _write_log_hour(folder: Path, hour: int, frame: pd.DataFrame, file_rows: int) -> int:
    frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"].to_numpy(), unit="ms", utc=True).as_unit("ms")
    folder.mkdir(parents=True, exist_ok=True)
    files = 0
    for i in range(0, len(frame), file_rows):
        frame.iloc[i: i + file_rows].to_parquet(folder / f"part-{hour:03d}-{i // file_rows:03d}.parquet", index=False)
        files += 1
    return files


def generate(work: Path, rows: int, outcomes: int, file_rows: int, seed: int) -> dict:
    """Write the log and the outcomes under `work`; returns what was written (also kept as work/meta.json)."""
    began = time.perf_counter()
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    now_ms = int(now.timestamp() * 1000)
    start_ms = now_ms - HOURS * HOUR_MS
    rng = np.random.default_rng(seed)
    per_hour = _hour_rows(rows)
    bases = np.round(per_hour / (1 + RETRY_SHARE)).astype(np.int64)  # the retries make up the rest
    matched_target = outcomes * (1 - ORPHAN_SHARE - CONFLICT_SHARE)
    if matched_target > bases.sum():
        raise SystemExit(f"--outcomes {outcomes:,} is more than the {bases.sum():,} distinct logged rows")
    share = matched_target / bases.sum()
    log_root = work / "log" / f"model={MODEL}"
    truth, carry, logged, files = [], None, 0, 0
    counts = dict.fromkeys(VERSION_SHARES, 0)
    for hour in range(HOURS):
        base, at = int(bases[hour]), start_ms + hour * HOUR_MS
        parts = [carry] if carry is not None else []
        carry = None
        if base:
            sizes = _requests(rng, base)
            k = len(sizes)
            request = np.repeat(np.arange(k), sizes)
            row = np.arange(base) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            ids = _ids(rng, k)
            version = np.where(rng.random(k) < VERSION_SHARES["1"], "1", "2").astype(object)
            stamp = at + rng.integers(0, HOUR_MS, k)
            frame = datagen.generate(base, seed=seed * 100_000 + hour + 1)
            label = frame.pop(LABEL).to_numpy()
            sharp = np.where(version[request] == "1", SHARPNESS["1"], SHARPNESS["2"])
            probability = 1 / (1 + np.exp(-(-4.0 + sharp * label + rng.normal(0, 1, base))))
            frame = frame.assign(prediction=(probability >= THRESHOLD).astype(np.int64), probability=probability,
                                 request_id=ids[request], row=row, model_version=version[request],
                                 role=np.array([ROLES[v] for v in version], dtype=object)[request],
                                 timestamp=stamp[request])
            retried = rng.random(k) < RETRY_SHARE
            again = frame[retried[request]].copy()
            again["timestamp"] += (rng.integers(200, 60_000, k))[request][retried[request]]
            later = again["timestamp"].to_numpy() >= at + HOUR_MS
            parts += [frame, again[~later]]
            carry = again[later] if later.any() and hour + 1 < HOURS else None
            chosen = rng.random(base) < share
            observed = stamp[request] + rng.exponential(2 * DAY_MS, base).astype(np.int64)
            late = observed >= now_ms
            observed[late] = stamp[request][late] + (rng.random(int(late.sum())) * (now_ms - stamp[request][late]))
            truth.append(pd.DataFrame({"request_id": ids[request][chosen], "row": row[chosen],
                                       LABEL: label[chosen].astype(np.int64), "observed_at": observed[chosen]}))
        if parts:
            frame = pd.concat(parts, ignore_index=True)
            for name, n in frame["model_version"].value_counts().items():
                counts[name] += int(n)
            logged += len(frame)
            files += _write_log_hour(log_root / f"hour={datetime.fromtimestamp(at / 1000, timezone.utc):%Y-%m-%dT%H}",
                                     hour, frame, file_rows)
    truth = pd.concat(truth, ignore_index=True)
    conflicts = truth.iloc[rng.choice(len(truth), int(round(outcomes * CONFLICT_SHARE)), replace=False)].copy()
    conflicts[LABEL] = 1 - conflicts[LABEL]
    moved = conflicts["observed_at"] + rng.integers(-DAY_MS, DAY_MS, len(conflicts))
    moved = np.clip(moved, start_ms, now_ms - 1)
    conflicts["observed_at"] = np.where(moved == conflicts["observed_at"], moved - 1, moved)
    orphans = int(round(outcomes * ORPHAN_SHARE))
    orphans = pd.DataFrame({"request_id": _ids(rng, orphans), "row": np.zeros(orphans, np.int64),
                            LABEL: (rng.random(orphans) < 0.02).astype(np.int64),
                            "observed_at": rng.integers(start_ms, now_ms, orphans)})
    truth = pd.concat([truth, conflicts, orphans], ignore_index=True)
    out_root = work / "outcomes" / f"model={MODEL}"
    for day, part in truth.groupby(truth["observed_at"] // DAY_MS, sort=True):
        part = part.sort_values(["request_id", "row", "observed_at"]).reset_index(drop=True)
        part["observed_at"] = pd.to_datetime(part["observed_at"].to_numpy(), unit="ms", utc=True).as_unit("ms")
        part["request_id"] = part["request_id"].astype("string")
        folder = out_root / f"date={datetime.fromtimestamp(day * 86400, timezone.utc):%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        part.to_parquet(folder / "part-bench.parquet", index=False)
    meta = {"generator": GENERATOR, "rows": rows, "outcomes_asked": outcomes, "file_rows": file_rows, "seed": seed,
            "now": now.isoformat(), "logged": logged, "versions": counts, "files": files,
            "outcomes": len(truth), "orphans": orphans.shape[0], "conflicts": len(conflicts),
            "seconds": time.perf_counter() - began}
    (work / "meta.json").write_text(json.dumps(meta))
    return meta


def prepared(work: Path, rows: int, outcomes: int, file_rows: int, seed: int) -> dict:
    """The data of this size under `work`: reused when a previous run wrote it with the same settings."""
    meta_file = work / "meta.json"
    if meta_file.exists():
        meta = json.loads(meta_file.read_text())
        if (meta.get("generator"), meta["rows"], meta["outcomes_asked"], meta["file_rows"], meta["seed"]) == (
                GENERATOR, rows, outcomes, file_rows, seed):
            print(f"  reusing the data in {work}", flush=True)
            return meta
    for sub in ("log", "outcomes"):
        shutil.rmtree(work / sub, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    meta = generate(work, rows, outcomes, file_rows, seed)
    os.sync()  # on disk before the timing: no writeback competes with the reads
    return meta


# ------------------------------------------------------------------------------------------- the measured ways

class StubVersions:
    """What logic.Versions reads from the registry, the same for every version."""

    def __call__(self, version: str) -> dict:
        return {"threshold": THRESHOLD, "costs": COSTS, "registered": {}, "training_prevalence": 0.02, "error": None}

    def threshold(self, version: str) -> float | None:
        return self(version)["threshold"]


def _imports() -> None:
    """Every module either way uses, loaded before any timing (and all a bare process loads)."""
    import fsspec  # noqa: F401
    import pyarrow  # noqa: F401
    import pyarrow.compute  # noqa: F401
    import pyarrow.dataset  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    import sklearn.metrics  # noqa: F401

    import components.outcomes  # noqa: F401
    import components.performance.join  # noqa: F401
    import components.performance.logic  # noqa: F401


def _peak_mb() -> float:
    """This process's peak RSS since it started (VmHWM). Not ru_maxrss: Linux carries the parent's RSS at the
    fork into a child's ru_maxrss, so a child of a parent that generated the data would report the parent's."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _window(work: Path) -> tuple[datetime, datetime, datetime]:
    now = datetime.fromisoformat(json.loads((work / "meta.json").read_text())["now"])
    return now - timedelta(days=DAYS), now, now


def run_check(work: Path) -> dict:
    """The live check's reading, joining and measuring, timed by stage."""
    import pyarrow as pa

    from components import outcomes
    from components.performance import join, logic

    start, stop, now = _window(work)
    versions = StubVersions()
    pool = pa.default_memory_pool()
    stages = {}
    began = time.perf_counter()
    truth, conflicting = outcomes.latest(str(work / "outcomes"), MODEL, LABEL, since=start)
    stages["latest"] = {"seconds": time.perf_counter() - began, "peak_mb": _peak_mb(),
                        "arrow_mb": pool.max_memory() / 2**20}
    found = join.join(str(work / "log"), MODEL, truth, LABEL, start, stop, now, versions.threshold)
    stages["join"] = {"seconds": time.perf_counter() - began - stages["latest"]["seconds"], "peak_mb": _peak_mb(),
                      "arrow_mb": pool.max_memory() / 2**20}
    figures = logic.per_version(found, versions, POSITIVE)
    seconds = time.perf_counter() - began
    stages["per_version"] = {"seconds": seconds - sum(s["seconds"] for s in stages.values()), "peak_mb": _peak_mb(),
                             "arrow_mb": pool.max_memory() / 2**20}
    if found.skipped:
        raise SystemExit(f"the check skipped files: {found.skipped[:3]}")
    result = {name: {**{k: entry[k] for k in ("logged", "labelled", "positives")},
                     "flagged": entry["flagged"]["logged"], **{m: entry["metrics"][m] for m in METRICS}}
              for name, entry in figures.items()}
    return {"seconds": seconds, "peak_mb": _peak_mb(), "stages": stages, "versions": result,
            "outcomes": truth.num_rows, "orphans": int(truth.num_rows - found.matched.sum()),
            "conflicting": conflicting}


def run_pandas(work: Path) -> dict:
    """The same figures the plain way: whole tables in pandas, drop_duplicates, merge, scikit-learn."""
    from sklearn.metrics import average_precision_score, precision_score, recall_score, roc_auc_score

    start, stop, _ = _window(work)
    key = ["request_id", "row"]
    began = time.perf_counter()
    log = pd.read_parquet(work / "log" / f"model={MODEL}", columns=LOG_COLUMNS)
    truth = pd.read_parquet(work / "outcomes" / f"model={MODEL}", columns=OUTCOME_COLUMNS)
    truth = truth[truth["observed_at"] >= pd.Timestamp(start)]
    conflicting = int((truth.groupby(key)[LABEL].nunique() > 1).sum())
    truth = truth.sort_values("observed_at", kind="stable").drop_duplicates(key, keep="last")
    orphans = int((~pd.MultiIndex.from_frame(truth[key]).isin(pd.MultiIndex.from_frame(log[key]))).sum())
    window = log[(log["timestamp"] >= pd.Timestamp(start)) & (log["timestamp"] <= pd.Timestamp(stop))]
    logged = window.groupby("model_version").size()
    flagged = window[window["probability"] >= THRESHOLD].groupby("model_version").size()
    last = window.sort_values("timestamp", kind="stable").drop_duplicates([*key, "model_version"], keep="last")
    joined = last.merge(truth, on=key, how="inner")
    result = {}
    for name, part in joined.groupby("model_version"):
        positive = (part[LABEL] == POSITIVE).to_numpy()
        probability = part["probability"].to_numpy()
        decided = probability >= THRESHOLD
        result[name] = {"logged": int(logged.get(name, 0)), "labelled": len(part), "positives": int(positive.sum()),
                        "flagged": int(flagged.get(name, 0)),
                        "precision": float(precision_score(positive, decided, zero_division=np.nan)),
                        "recall": float(recall_score(positive, decided, zero_division=np.nan)),
                        "roc_auc": float(roc_auc_score(positive, probability)),
                        "average_precision": float(average_precision_score(positive, probability))}
    seconds = time.perf_counter() - began
    return {"seconds": seconds, "peak_mb": _peak_mb(), "versions": result, "outcomes": len(truth),
            "orphans": orphans, "conflicting": conflicting}


def run_profile(work: Path) -> None:
    """One check under cProfile: the functions where its time goes."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    run_check(work)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout).strip_dirs()
    stats.sort_stats("tottime").print_stats(15)
    stats.sort_stats("cumulative").print_stats(25)


def child(kind: str, work: Path) -> None:
    """In a fresh process: imports first, then the one measured thing; the figures as a last JSON line."""
    _imports()
    if kind == "bare":
        print(json.dumps({"peak_mb": _peak_mb()}))
    elif kind == "check":
        print(json.dumps(run_check(work)))
    elif kind == "pandas":
        print(json.dumps(run_pandas(work)))
    else:
        run_profile(work)


def spawn(kind: str, work: Path) -> dict | str:
    done = subprocess.run([sys.executable, __file__, "--measure", kind, str(work)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"the {kind} process failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout if kind == "profile" else json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ the report

def agree(check: dict, peer: dict) -> list[str]:
    """What differs between the two ways' figures (empty: they agree)."""
    wrong = [f"{what}: check {check[what]} pandas {peer[what]}" for what in ("outcomes", "orphans", "conflicting")
             if check[what] != peer[what]]
    if sorted(check["versions"]) != sorted(peer["versions"]):
        return [*wrong, f"versions: check {sorted(check['versions'])} pandas {sorted(peer['versions'])}"]
    for name, ours in check["versions"].items():
        theirs = peer["versions"][name]
        wrong += [f"version {name} {k}: check {ours[k]} pandas {theirs[k]}" for k in COMPARED if ours[k] != theirs[k]]
        wrong += [f"version {name} {m}: check {ours[m]} pandas {theirs[m]}" for m in METRICS
                  if not (ours[m] is None and np.isnan(theirs[m]) or ours[m] is not None
                          and np.isclose(ours[m], theirs[m], rtol=1e-9, atol=1e-12))]
    return wrong


def measure_size(work: Path, runs: int, profile: bool) -> dict:
    """Warm-up, then `runs` timed runs of each way, each in a fresh process; medians and one run's figures."""
    bare = spawn("bare", work)["peak_mb"]
    spawn("check", work)
    checks = [spawn("check", work) for _ in range(runs)]
    spawn("pandas", work)
    peers = [spawn("pandas", work) for _ in range(runs)]
    wrong = [w for c, p in zip(checks, peers) for w in agree(c, p)]
    figures = {"bare_mb": bare, "checks": checks, "peers": peers, "wrong": wrong,
               **{f"check_{k}": statistics.median(c[k] for c in checks) for k in ("seconds", "peak_mb")},
               **{f"pandas_{k}": statistics.median(p[k] for p in peers) for k in ("seconds", "peak_mb")}}
    figures["profile"] = spawn("profile", work) if profile else None
    return figures


def print_size(meta: dict, f: dict) -> None:
    print(f"\n{meta['logged']:,} rows logged ({meta['rows']:,} asked; version 1 {meta['versions']['1']:,}, "
          f"version 2 {meta['versions']['2']:,}) in {meta['files']} files; {meta['outcomes']:,} outcome rows "
          f"({meta['orphans']:,} orphans, {meta['conflicts']:,} conflicting labels)")
    for r in f["checks"]:
        stages = ", ".join(f"{name} {s['seconds']:.2f} s (peak {s['peak_mb']:.0f} MB, arrow pool "
                           f"{s['arrow_mb']:.0f} MB)" for name, s in r["stages"].items())
        print(f"  check run: {r['seconds']:.2f} s = {stages}")
    for r in f["peers"]:
        print(f"  pandas run: {r['seconds']:.2f} s, peak {r['peak_mb']:.0f} MB")
    first, peer = f["checks"][0], f["peers"][0]
    print(f"  outcomes after latest: {first['outcomes']:,}, orphans {first['orphans']:,}, conflicting "
          f"{first['conflicting']:,}")
    for name, v in first["versions"].items():
        p = peer["versions"][name]
        print(f"  version {name}: logged {v['logged']:,}, flagged {v['flagged']:,}, labelled {v['labelled']:,} "
              f"(pandas {p['labelled']:,}), positives {v['positives']:,}; recall {v['recall']:.6f} "
              f"(pandas {p['recall']:.6f}), roc_auc {v['roc_auc']:.6f} (pandas {p['roc_auc']:.6f}), precision "
              f"{v['precision']:.6f}, average_precision {v['average_precision']:.6f}")
    print("  same figures both ways in every run: " + ("yes" if not f["wrong"] else "NO: " + "; ".join(f["wrong"][:8])))
    if f["profile"]:
        print(f["profile"])


def print_table(sizes: list[tuple[dict, dict]]) -> None:
    print(f"\nmedians of {len(sizes[0][1]['checks'])} run(s), each in a fresh process after a warm-up; "
          f"own = peak RSS minus a bare process importing the same modules ({sizes[0][1]['bare_mb']:.0f} MB); "
          f"time x, peak x = pandas / check; {len(os.sched_getaffinity(0))} cores, load average "
          f"{os.getloadavg()[0]:.1f} at the end")
    head = (f"{'rows':>12} {'outcomes':>9} {'check s':>8} {'check MB':>9} {'(own)':>6} {'pandas s':>9} "
            f"{'pandas MB':>10} {'(own)':>6} {'time x':>7} {'peak x':>7} {'same':>5}")
    print(head)
    print("-" * len(head))
    for meta, f in sizes:
        bare = f["bare_mb"]
        print(f"{meta['logged']:>12,} {meta['outcomes']:>9,} {f['check_seconds']:>8.2f} {f['check_peak_mb']:>9.0f} "
              f"{f['check_peak_mb'] - bare:>6.0f} {f['pandas_seconds']:>9.2f} {f['pandas_peak_mb']:>10.0f} "
              f"{f['pandas_peak_mb'] - bare:>6.0f} {f['pandas_seconds'] / f['check_seconds']:>6.1f}x "
              f"{f['pandas_peak_mb'] / f['check_peak_mb']:>6.1f}x {'yes' if not f['wrong'] else 'NO':>5}")
    print("targets:")
    by_rows = {meta["rows"]: (meta, f) for meta, f in sizes}
    if 1_000_000 in by_rows and by_rows[1_000_000][0]["outcomes_asked"] == 500_000:
        f = by_rows[1_000_000][1]
        print(f"  1,000,000 rows + 500,000 outcomes: {f['check_seconds']:.2f} s (target < {TARGET_SECONDS} s: "
              f"{'met' if f['check_seconds'] < TARGET_SECONDS else 'MISSED'}), peak {f['check_peak_mb']:.0f} MB "
              f"(target < {TARGET_MB} MB: {'met' if f['check_peak_mb'] < TARGET_MB else 'MISSED'})")
    else:
        print("  1,000,000 rows + 500,000 outcomes: not run")
    if len(sizes) > 1:
        (small, fs), (large, fl) = sizes[0], sizes[-1]
        total = fl["check_peak_mb"] / fs["check_peak_mb"]
        own = (fl["check_peak_mb"] - fl["bare_mb"]) / max(fs["check_peak_mb"] - fs["bare_mb"], 1)
        aimed = small["rows"] == 1_000_000 and large["rows"] == 10_000_000
        print(f"  check peak at {large['rows']:,} / at {small['rows']:,} rows: {total:.2f} (own memory {own:.2f})"
              + (f" (target <= {TARGET_GROWTH:.2f}: {'met' if total <= TARGET_GROWTH else 'MISSED'})" if aimed
                 else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000", help="logged rows; several sizes comma-separated")
    parser.add_argument("--outcomes", type=int, default=500_000, help="outcome rows (default 500,000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each way per size (default 3)")
    parser.add_argument("--file-rows", type=int, default=100_000, help="most rows in one log file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, help="keep the generated data here (reused when the settings match)")
    parser.add_argument("--profile", action="store_true", help="also cProfile one check run per size")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # a measured child process: KIND DIR
    args = parser.parse_args()
    if args.measure:
        child(args.measure[0], Path(args.measure[1]))
        return 0
    sizes = sorted(int(s.replace("_", "")) for s in args.rows.split(","))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            work = (args.dir or Path(tmp)) / f"rows-{rows}"
            print(f"{rows:,} rows, {args.outcomes:,} outcomes: data in {work}", flush=True)
            meta = prepared(work, rows, args.outcomes, args.file_rows, args.seed)
            print(f"  {meta['logged']:,} rows logged, {meta['outcomes']:,} outcome rows (generating took "
                  f"{meta['seconds']:.0f} s); measuring", flush=True)
            figures = measure_size(work, args.runs, args.profile)
            print_size(meta, figures)
            results.append((meta, figures))
            if args.dir is None:
                shutil.rmtree(work)
    print_table(results)
    wrong = [w for _, f in results for w in f["wrong"]]
    if wrong:
        raise SystemExit("the check and pandas disagree: " + "; ".join(wrong[:8]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
