"""`mlops demo`: the whole loop at once on this machine, from the first training to a retrained model serving."""
from __future__ import annotations

from pathlib import Path

from mlops.cli.common import HOME
from pipelines.defaults import CONFIG, GATES


def cmd_demo(args) -> int:
    from mlops import demo

    if args.rows < 1000:
        raise ValueError(f"--rows must be at least 1000 (the gates need frauds in every slice), got {args.rows}")
    return demo.main(args.home, args.rows, args.port, args.min_samples, args.config, args.gates)


def add_demo(sub) -> None:
    """`mlops demo`."""
    demo = sub.add_parser("demo", help="the whole loop on this machine: train, serve, drift, retrain, switch",
                          description="Generates data, trains, gates, registers and deploys v1, serves it "
                                      "(mlops serve behind the demo's switch on --port), sends clean then "
                                      "drifted traffic and the outcomes of what was served, runs the "
                                      "monitoring (drift check, live precision, recall and expected cost per "
                                      "version) after each, retrains v2 on the served rows labelled by their "
                                      "outcomes and fresh labelled rows, deploys it and moves the traffic to it "
                                      "without dropping a request; then prints a summary. State (MLflow on "
                                      "SQLite, inference log, outcomes, runs) in --home, cleared at the next "
                                      "run. Ctrl-C stops every process it started.")
    demo.add_argument("--rows", type=int, default=20_000, help="labelled rows of each training (default: 20000; "
                                                                "the traffic of each phase is min_samples of "
                                                                "configs/drift.yaml, at most half of it)")
    demo.add_argument("--port", type=int, default=8080, help="port of the demo's server (default: 8080)")
    demo.add_argument("--home", type=Path, default=HOME / "demo", help="state folder (default: .mlops/demo)")
    demo.add_argument("--min-samples", type=int, help="rows the drift check needs (default: min_samples of "
                                                      "configs/drift.yaml, at most --rows / 2)")
    demo.add_argument("--config", help=f"training config (default: {CONFIG} of the source tree)")
    demo.add_argument("--gates", help=f"quality gates (default: {GATES} of the source tree)")
    demo.set_defaults(func=cmd_demo)
