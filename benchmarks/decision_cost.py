"""What the served decisions cost against the best single threshold on the same sample (the oracle).

    python benchmarks/decision_cost.py [--train-rows 100000] [--rows 40000]
    python benchmarks/decision_cost.py --table fair [--statsmodels /tmp/statsmodels] [--cost-false-negative 3]

`--table transactions` (the default): trains once with the configs of record (configs/production.yaml: its
training config and its decision policy, min_cost with a missed fraud costing 25 false alarms) on the
generator's transactions (seed 7, as `mlops run training` uses), then scores five fresh samples (seeds 101..105,
40,000 rows each) and one drifted sample (drift 0.5, seed 106).

`--table fair`: Ray Fair's extramarital affairs survey (Journal of Political Economy, 1978), 6,366 rows and 8
numeric features, shipped inside the statsmodels wheel as `statsmodels.datasets.fair`; the label `affair` is
"yes" where `affairs` > 0 (32 % of rows), "no" otherwise, and `affairs` itself is dropped. statsmodels is not a
dependency of the project; get it beside the project's virtualenv, whose numpy, scipy and pandas it uses:

    .venv/bin/pip install --no-deps --target /tmp/statsmodels statsmodels

Its contract comes from `components.contract.infer` (as `mlops schema infer` writes it). A stratified 60 % of
the table is the training part, trained with the configs-of-record training config but a logistic regression
(`--estimator`; tuned over C) and min_cost at 3:1 (`--cost-false-negative`, `--cost-false-positive`): at the
record's 25:1 and a 32 % prevalence the best decision is to flag nearly everyone. The test samples are
bootstrap resamples (seeds 101..105) of the held-out 40 %, each its size.

For each sample, the mean cost per row (cost_false_negative x missed positives + cost_false_positive x false
alarms, over rows) of the decisions at the model's threshold (tuned on its validation split in training), at
the oracle's threshold (`components.decision.tune` on the sample itself: the lowest cost over every threshold
of `decision.curve`, so it is optimistic, more so on small samples), and at the 0.5 cut; their ratios to the
oracle; threshold, precision, recall and flag rate of each. Then the median ratio over the fresh samples.
Target: a median served/oracle ratio of at most 1.05. On 2 cores the transactions take about 1.5 min (mostly
training), the fair table a few seconds with the logistic regression, about a minute with hist_gradient_boosting.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components import contract as contracts  # noqa: E402
from components import decision  # noqa: E402
from components.scoring import is_positive, positive_probability  # noqa: E402
from components.train.logic import train  # noqa: E402
from pipelines import defaults  # noqa: E402

TARGET_RATIO = 1.05
FRESH_SEEDS, DRIFT_SEED = (101, 102, 103, 104, 105), 106
FAIR_LABEL, FAIR_TRAIN_SHARE = "affair", 0.6
# the table's estimator in place of the record's; the rest of the training config is the record's
ESTIMATORS = {"logistic_regression": ({"max_iter": 1000}, {"C": [0.1, 1.0, 10.0]})}


def decisions(model, contract, policy: dict, threshold: float, sample: pd.DataFrame) -> dict[str, dict]:
    """The served threshold, the sample's oracle and the 0.5 cut: each one's threshold and figures."""
    probability = positive_probability(model, sample, contract)
    positive = is_positive(sample[contract.label], contract)
    chosen = {"served": threshold, "oracle": decision.tune(probability, positive, policy),
              "cut 0.5": decision.DEFAULT_THRESHOLD}
    return {name: {"threshold": t, **decision.figures(probability, positive, t, policy)} for name, t in chosen.items()}


def _number(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def print_sample(title: str, rows: dict[str, dict]) -> float:
    """One sample's table; returns the served/oracle cost ratio."""
    oracle = rows["oracle"]["expected_cost"]
    first = rows["served"]
    print(f"\n{title}: {first['rows']:,} rows, {first['positives']:,} positive "
          f"({first['positives'] / first['rows']:.2%})")
    print(f"  {'decision':<9} {'threshold':>9} {'precision':>9} {'recall':>7} {'flag rate':>9} {'cost/row':>9} "
          f"{'x oracle':>8}")
    for name, r in rows.items():
        print(f"  {name:<9} {r['threshold']:9.4f} {_number(r['precision']):>9} {_number(r['recall']):>7} "
              f"{r['flag_rate']:9.4f} {r['expected_cost']:9.4f} {r['expected_cost'] / oracle:8.3f}")
    return first["expected_cost"] / oracle


def report(name: str, result, contract, policy: dict, samples: list[tuple[str, pd.DataFrame, bool]]) -> None:
    """Each sample's table, then the medians over the samples marked fresh."""
    served = result.decision
    validation = served["validation"]
    print(f"{name}: threshold {served['threshold']:.4f} tuned by {served['objective']} "
          f"(cost_false_negative {policy['cost_false_negative']:g}, cost_false_positive "
          f"{policy['cost_false_positive']:g}) on {validation['method']} ({validation['rows']:,} rows, "
          f"{validation['positives']:,} positive); best params {result.best_params}")
    fresh, cut, others = [], [], []
    for title, sample, is_fresh in samples:
        rows = decisions(result.pipeline, contract, policy, served["threshold"], sample)
        ratio = print_sample(title, rows)
        if is_fresh:
            fresh.append(ratio)
            cut.append(rows["cut 0.5"]["expected_cost"] / rows["oracle"]["expected_cost"])
        else:
            others.append((title, ratio))
    median = statistics.median(fresh)
    print(f"\n{name}: median served/oracle cost ratio over {len(fresh)} fresh samples {median:.3f} "
          f"(target <= {TARGET_RATIO}: {'met' if median <= TARGET_RATIO else 'MISSED'}); per sample "
          f"{', '.join(f'{r:.3f}' for r in fresh)}; at the 0.5 cut the median is {statistics.median(cut):.3f}")
    for title, ratio in others:
        print(f"{name}: {title}: served/oracle {ratio:.3f} (not in the median)")


def transactions(args) -> None:
    from mlops import datagen

    settings = defaults.load(root=ROOT)
    contract = contracts.load(str(ROOT / settings.schema_uri))
    start = time.perf_counter()
    result = train(datagen.generate(args.train_rows, args.seed), contract, settings.training_config,
                   settings.decision)
    print(f"trained on {args.train_rows:,} generated transactions (seed {args.seed}) with the configs of record "
          f"in {time.perf_counter() - start:.0f} s\n")
    samples = [(f"fresh sample, seed {s}", datagen.generate(args.rows, s), True) for s in FRESH_SEEDS]
    samples.append((f"drifted sample, drift {args.drift}, seed {DRIFT_SEED}",
                    datagen.generate(args.rows, DRIFT_SEED, args.drift), False))
    report("transactions (mlops.datagen)", result, contract, settings.decision, samples)


def load_fair(path: str) -> pd.DataFrame:
    """statsmodels' copy of Fair's table with the label as "yes"/"no"; statsmodels from `path` if not installed."""
    sys.path.append(path)
    try:
        from statsmodels.datasets import fair
    except ImportError:
        sys.exit(f"statsmodels is neither installed nor in {path}: "
                 f".venv/bin/pip install --no-deps --target {path} statsmodels")
    table = fair.load_pandas().data
    label = np.where(table["affairs"] > 0, "yes", "no")
    return table.drop(columns="affairs").assign(**{FAIR_LABEL: label})


def fair_table(args) -> None:
    from sklearn.model_selection import train_test_split

    table = load_fair(args.statsmodels)
    contract = contracts.parse(contracts.infer(table, FAIR_LABEL, name="fair", positive_class="yes"), "fair")
    config = dict(defaults.load(root=ROOT).training_config)
    if args.estimator in ESTIMATORS:
        params, grid = ESTIMATORS[args.estimator]
        config.update(estimator=args.estimator, params=params, tuning={**config["tuning"], "param_grid": grid})
    policy = decision.check_decision({"objective": "min_cost", "cost_false_negative": args.cost_false_negative,
                                      "cost_false_positive": args.cost_false_positive})
    part, held_out = train_test_split(table, train_size=FAIR_TRAIN_SHARE, stratify=table[FAIR_LABEL],
                                      random_state=args.seed)
    start = time.perf_counter()
    result = train(part, contract, config, policy)
    print(f"statsmodels.datasets.fair (Fair 1978): {len(table):,} rows, {len(contract.feature_columns)} features, "
          f"{(table[FAIR_LABEL] == 'yes').mean():.1%} \"yes\"; trained {config['estimator']} on a stratified "
          f"{len(part):,}-row part (seed {args.seed}) in {time.perf_counter() - start:.1f} s; test samples are "
          f"bootstrap resamples of the {len(held_out):,} held-out rows\n")
    samples = [(f"bootstrap resample, seed {s}", held_out.sample(len(held_out), replace=True, random_state=s), True)
               for s in FRESH_SEEDS]
    report("fair (statsmodels)", result, contract, policy, samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", choices=("transactions", "fair"), default="transactions")
    parser.add_argument("--train-rows", type=int, default=100_000, help="transactions: training rows")
    parser.add_argument("--rows", type=int, default=40_000, help="transactions: rows of each test sample")
    parser.add_argument("--drift", type=float, default=0.5, help="transactions: drift of the drifted sample")
    parser.add_argument("--seed", type=int, default=7, help="seed of the training data (fair: of its split)")
    parser.add_argument("--statsmodels", default="/tmp/statsmodels",
                        help="fair: where statsmodels was installed with pip --target, if not in the venv")
    parser.add_argument("--estimator", choices=(*ESTIMATORS, "hist_gradient_boosting"), default="logistic_regression",
                        help="fair: the estimator; hist_gradient_boosting keeps the record's params and grid")
    parser.add_argument("--cost-false-negative", type=float, default=3.0, help="fair: cost of a missed 'yes'")
    parser.add_argument("--cost-false-positive", type=float, default=1.0, help="fair: cost of a false 'yes'")
    args = parser.parse_args()
    (fair_table if args.table == "fair" else transactions)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
