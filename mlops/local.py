"""Run the pipelines on one machine (kfp.local SubprocessRunner, MLflow on SQLite under `.mlops/`), and carry
out the retraining requests a drift-check run left in its outbox."""
from __future__ import annotations

import contextlib
import json
import re
import sys
import time
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from components import source
from components.trigger.outbox import Outbox
from pipelines import defaults as config_defaults

ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w+(?:Error|Exception|Failed)): (.+)$")
TASK_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d\.\d+) - INFO - (?:Executing task '([\w-]+)'|Task '([\w-]+)' finished)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")
GATE_STOP = "stop-on-failed-gate"  # the task that fails the run when the gate did not pass


class PipelineFailed(RuntimeError):
    """A step failed; the message is that step's own error, `step` its name."""

    def __init__(self, message: str, step: str = ""):
        super().__init__(message)
        self.step = step


@dataclass
class TrainingRun:
    run_dir: Path
    log: Path
    seconds: float
    rows: int
    steps: dict[str, float]
    gate: dict
    registration: dict | None
    deployment: dict | None
    evaluation: dict | None = None  # what evaluate_model wrote: metrics, decision, baseline
    peaks: dict[str, float] = field(default_factory=dict)  # step -> peak resident memory, MB

    def decision_lines(self) -> list[str]:
        """Where the candidate and production decide, and what that catches and costs on the holdout."""
        from components.decision import summary_lines

        return summary_lines(self.evaluation) if self.evaluation else []


@dataclass
class Retraining:
    """A retraining request of the outbox as the runner settled it."""
    request: str  # its id in the outbox (the registry's retraining_run tag)
    status: str  # "succeeded" (registered), "failed"
    run: TrainingRun | None  # the local training run; None when none ran to the end
    error: str | None = None


@dataclass
class DriftCheckRun:
    run_dir: Path
    log: Path
    seconds: float
    steps: dict[str, float]
    result: dict  # the monitoring run's JSON result: the drift check's, with `performance` when outcomes were given
    retraining: dict | None  # the trigger's outcome; None when retraining was not due
    retrainings: list[Retraining] = field(default_factory=list)  # the outbox's requests carried out after it


def local_tracking_uri(home: Path) -> str:
    return f"sqlite:///{(home / 'mlflow.db').resolve()}"


def outbox(home: Path, cooldown_hours: float = 6.0) -> Outbox:
    """The retraining outbox of the local runs in `home`: the drift-check runs' trigger records requests in it."""
    return Outbox(str(home.resolve() / "outbox"), stale_after_hours=cooldown_hours)


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _last_error(log: Path) -> str:
    """The last exception line a step printed: its own explanation of what went wrong."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        match = ERROR_LINE.match(line)
        if match:
            return f"{match.group(1)}: {match.group(2)}"
    return "a step failed without an error message"


def step_seconds(log: Path) -> dict[str, float]:
    """Wall time of each step, from kfp.local's start and finish lines in the run log."""
    started, took = {}, {}
    for line in log.read_text(errors="replace").splitlines():
        match = TASK_LINE.match(ANSI.sub("", line))
        if match:
            h, m, sec, begin, end = match.groups()
            t = int(h) * 3600 + int(m) * 60 + float(sec)
            if begin:
                started[begin] = t
            elif end in started:
                took[end] = (t - started[end]) % 86400
    return took


def step_peaks(log: Path) -> dict[str, float]:
    """Peak resident memory (MB) of each step, from the line components.memory prints at a step's end."""
    from components.memory import PREFIX

    current, peaks = None, {}
    for line in log.read_text(errors="replace").splitlines():
        match = TASK_LINE.match(ANSI.sub("", line))
        if match:
            current = match.group(4)
        elif current and PREFIX in line:
            peaks[current] = float(line.split(PREFIX, 1)[1].split()[0])
    return peaks


def pipeline_root(home: Path) -> Path:
    """Where kfp.local keeps each local run's outputs, one folder per run."""
    return home.resolve() / "pipeline_root"


def _run(pipeline, name: str, arguments: dict, home: Path, tolerated: str | None = None) -> tuple[Path, Path, float]:
    """Run `pipeline(**arguments)` under kfp.local with its steps in `home`: (its run folder, its log, seconds).
    Raise PipelineFailed with the failing step's error, unless that step's name holds `tolerated`."""
    from kfp import local

    root = pipeline_root(home)
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    before = set(root.iterdir())
    log = home / "logs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"running the {name} pipeline (kfp.local); step logs: {log}", file=sys.stderr)
    start = time.perf_counter()
    # steps run in `home`: an MLflow store on SQLite keeps its artifacts in ./mlruns, which is then here
    with open(log, "w") as fh, contextlib.redirect_stdout(fh), contextlib.chdir(home), warnings.catch_warnings():
        # kfp.local notes that display names do nothing locally and that the image is not run here
        warnings.filterwarnings("ignore", message=".*(no effect in the current local runner|base image).*")
        try:
            pipeline(**arguments)
        except RuntimeError as exc:
            failed = re.findall(r"Inner task failed: (.*)\.", str(exc))
            step = ANSI.sub("", failed[0]) if failed else "a step"
            fh.flush()
            if tolerated is None or tolerated not in step:
                raise PipelineFailed(f"step {step} failed: {_last_error(log)}\n(full log: {log})", step) from None
    seconds = time.perf_counter() - start
    # this run's folder; a step may have started runs of other pipelines (a retraining) beside it
    (run_dir,) = [p for p in set(root.iterdir()) - before if p.name.startswith(f"{name}-")]
    return run_dir, log, seconds


def run_training(data_uri: str, settings: config_defaults.TrainingDefaults, home: Path,
                 commit: str | None = None, parameters: dict | None = None) -> TrainingRun:
    """Run the whole training pipeline locally; raise PipelineFailed with the failing step's error.
    `parameters`: more pipeline arguments (e.g. trigger_reason, trigger_details)."""
    from pipelines import training

    commit = commit or source.commit()  # of the folder the user runs in, before the steps move to `home`
    arguments = {"data_uri": data_uri, "git_commit": commit, **settings.as_arguments(), **(parameters or {})}
    # a missed gate is reported by the summary, like a pass
    run_dir, log, seconds = _run(training.build(settings), training.NAME, arguments, home.resolve(), GATE_STOP)
    validated = _read_json(run_dir / "validate-data" / "executor_output.json")
    return TrainingRun(run_dir=run_dir, log=log, seconds=seconds,
                       rows=int(validated["parameterValues"]["rows"]), steps=step_seconds(log),
                       gate=_read_json(run_dir / "quality-gate" / "gate_report"),
                       registration=_read_json(run_dir / "register-model" / "registration"),
                       deployment=_read_json(run_dir / "deploy-model" / "deployment" / "deployment.json"),
                       evaluation=_read_json(run_dir / "evaluate-model" / "evaluation"), peaks=step_peaks(log))


def run_drift_check(log_uri: str, settings: config_defaults.DriftDefaults, home: Path,
                    parameters: dict | None = None,
                    training: config_defaults.TrainingDefaults | None = None) -> DriftCheckRun:
    """Run the drift-check pipeline locally, its trigger recording a due retraining in the outbox of `home`,
    then carry out the outbox (`retrain`) with `training` (default: the configs of record); raise
    PipelineFailed with the failing step's error. `parameters`: more pipeline arguments (training_data_uri,
    cooldown_hours, training_parameters, ...)."""
    from pipelines import drift_check

    arguments = {"log_uri": log_uri, "tracking_uri": settings.tracking_uri, "registry_uri": settings.registry_uri,
                 "model_name": settings.model_name,
                 "drift_config": settings.config, "live_gates": settings.live,
                 "outbox_uri": str(home.resolve() / "outbox"), **(parameters or {})}
    run_dir, log, seconds = _run(drift_check.build(settings), drift_check.NAME, arguments, home.resolve())
    box = outbox(home, float(arguments.get("cooldown_hours", 6.0)))
    if training is None and box.pending():  # the configs of record, read only when there is a request
        training = config_defaults.for_local_runs(config_defaults.load(root=config_defaults.SOURCE))
    retrainings = retrain(box, training, home)
    return DriftCheckRun(run_dir=run_dir, log=log, seconds=seconds, steps=step_seconds(log),
                         result=_read_json(run_dir / "check-performance" / "result"),
                         retraining=_read_json(run_dir / "trigger-retraining" / "retraining"),
                         retrainings=retrainings)


def retrain(box: Outbox, settings: config_defaults.TrainingDefaults | None, home: Path) -> list[Retraining]:
    """Carry out the outbox: claims abandoned by a runner that died are reported as failed (loudly), then each
    pending request runs as a local training run and is settled. A request's parameters that are training
    settings (tracking_uri, model_name, training_config, quality_gates, ...) replace those of `settings`; the
    rest are pipeline arguments."""
    done = []
    for doc in box.abandoned():
        print(f"mlops: retraining {doc['id']} failed: {doc['error']}", file=sys.stderr)
        done.append(Retraining(doc["id"], "failed", None, doc["error"]))
    for request in box.claim():
        arguments = dict(request.parameters)
        data_uri = arguments.pop("data_uri")
        names = {f.name for f in fields(settings)}
        changed = replace(settings, **{k: arguments.pop(k) for k in list(arguments) if k in names})
        try:
            run = run_training(data_uri, changed, home, commit=request.commit, parameters=arguments)
        except BaseException as exc:  # settled either way; an interrupt goes on after settling
            error = f"{type(exc).__name__}: {exc}"
            box.settle(request.id, "failed", error=error)
            if not isinstance(exc, PipelineFailed):
                raise
            done.append(Retraining(request.id, "failed", None, error))
            continue
        status = "succeeded" if run.registration else "failed"
        box.settle(request.id, status, run=run.run_dir.name, registration=run.registration)
        done.append(Retraining(request.id, status, run))
    return done


def summary(run: TrainingRun, data_uri: str, settings: config_defaults.TrainingDefaults) -> str:
    steps = ", ".join(f"{name} {sec:.1f} s" + (f" / {run.peaks[name]:,.0f} MB" if name in run.peaks else "")
                      for name, sec in run.steps.items())
    lines = [f"Training pipeline finished in {run.seconds:.1f} s ({steps})", f"outputs: {run.run_dir}",
             f"data: {data_uri}: {run.rows:,} rows, valid", "",
             *(f"decision of {line}" for line in run.decision_lines()), "",
             f"quality gate: {'PASSED' if run.gate['passed'] else 'FAILED'}",
             f"  {'metric':<28} {'value':>10}  {'threshold':<28} {'baseline':>9}  verdict"]
    for row in run.gate["gates"]:
        value = "n/a" if row["value"] is None else f"{row['value']:.4f}"
        base = "" if row["baseline"] is None else f"{row['baseline']:.4f}"
        lines.append(f"  {row['metric']:<28} {value:>10}  {row['threshold']:<28} {base:>9}  {row['verdict']}"
                     + ("" if row["reason"] == "within bounds" or row["verdict"] == "not applicable"
                        else f" ({row['reason']})"))
    lines.append("")
    reg = run.registration
    if reg is None:
        lines.append("registered: nothing (the gate failed)")
    else:
        state = "new version" if reg["created"] else "already registered, unchanged"
        lines.append(f"registered: model '{reg['name']}' version {reg['version']}, alias '{reg['alias']}' ({state})")
        dep = run.deployment
        if dep is not None:
            lines.append(f"deployed ({dep['target']}): {dep['message']}"
                         + (f"; version {dep['previous_production']} archived"
                            if dep["outcome"] == "promoted" and dep["previous_production"] not in (None, dep["version"])
                            else ""))
        uri, registry = settings.tracking_uri, settings.registry_uri or settings.tracking_uri
        if uri.startswith("sqlite:"):
            mlflow_ui = Path(sys.executable).parent / "mlflow"
            store = f" --registry-store-uri {registry}" if registry != uri else ""
            lines += [f"MLflow UI:  {mlflow_ui} ui --backend-store-uri {uri}{store} --port 5000",
                      f"            then open http://127.0.0.1:5000/#/models/{reg['name']}/versions/{reg['version']}"]
        else:
            lines.append(f"MLflow UI:  {uri.rstrip('/')}/#/models/{reg['name']}/versions/{reg['version']}")
    lines.append(f"log: {run.log}")
    return "\n".join(lines)
