"""The defaults of record in configs/, checked and shaped into pipeline parameter defaults: each loader reads
the files and sections its pipeline needs, and no more."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from components.decision import DecisionError, check_decision
from components.deploy.online import online_of
from components.drift import DriftError
from components.drift.logic import check_config as check_drift_config
from components.gates import GateConfigError, check_gates, check_live
from components.metrics import METRICS
from components.numbers import finite_number
from components.source import SOURCE  # the source tree: configs/, schemas/
from components.train.logic import TrainingConfigError, check_config

CONFIG = "configs/production.yaml"
GATES = "configs/quality_gates.yaml"
BASELINE = "configs/baseline_metrics.yaml"
DRIFT = "configs/drift.yaml"


def absolute(uri: str, root: str | Path = ".") -> str:
    """The one rule for local paths a step is given (steps run in other folders): relative to `root`, made
    absolute; URLs as they are."""
    return uri if "://" in uri else str(Path(root, uri).resolve())


def for_local_runs(settings: "TrainingDefaults", **changes) -> "TrainingDefaults":
    """`settings` for a local training run whose steps run in another folder: a relative schema path made
    absolute against the source tree, deployment target local, and `changes`."""
    from dataclasses import replace

    return replace(settings, schema_uri=absolute(settings.schema_uri, SOURCE), deployment_target="local", **changes)


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or malformed."""


def read_yaml(path: str | Path) -> dict:
    try:
        with open(path) as fh:
            doc = yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return doc


def _section(doc: dict, path, name: str, keys: set[str]) -> dict:
    section = doc.get(name)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: missing or malformed section '{name}'")
    unknown = sorted(set(section) - keys)
    missing = sorted(keys - set(section))
    if unknown or missing:
        raise ConfigError(f"{path}: section '{name}' has unknown key(s) {unknown} / missing key(s) {missing}; "
                          f"expected {sorted(keys)}")
    return section


def check_baseline(doc: dict, path) -> None:
    """Baseline metrics are known metric names mapped to finite numbers (not bools)."""
    for metric, value in doc.items():
        if metric not in METRICS:
            raise ConfigError(f"{path}: unknown metric {metric!r}; known metrics: {list(METRICS)}")
        if not finite_number(value):
            raise ConfigError(f"{path}: {metric} must be a finite number, got {value!r}")


def check_deploy(section: dict, path) -> dict:
    from components.deploy import TARGETS

    if section["target"] not in TARGETS:
        raise ConfigError(f"{path}: deploy.target must be one of {list(TARGETS)}, got {section['target']!r}")
    for key in ("namespace", "rollout_name"):
        if not isinstance(section[key], str) or not section[key]:
            raise ConfigError(f"{path}: deploy.{key} must be a non-empty string, got {section[key]!r}")
    if not finite_number(section["timeout_minutes"]) or section["timeout_minutes"] < 0:
        raise ConfigError(f"{path}: deploy.timeout_minutes must be a number >= 0 (0: the Rollout's own pauses and "
                          f"analyses plus a margin), got {section['timeout_minutes']!r}")
    return section
# The training pipeline's steps (task names in the compiled YAML); tests/compile checks they agree.
STEPS = ("validate-data", "train-model", "evaluate-model", "quality-gate", "register-model", "deploy-model",
         "stop-on-failed-gate")
DRIFT_STEPS = ("check-drift", "check-performance", "trigger-retraining")  # the drift-check pipeline's
RESOURCE_KEYS = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")
# Kubernetes quantities in the forms KFP accepts: cores ("2", "0.5", "500m") and bytes ("512Mi", "2Gi", "1G")
_CPU = re.compile(r"((?:\d*\.)?\d+)(m?)")
_MEMORY = re.compile(r"(\d+)(Ki|Mi|Gi|Ti|Pi|Ei|K|M|G|T|P|E)?")
_BYTES = {None: 1, **{u: 1000 ** (i + 1) for i, u in enumerate("KMGTPE")},
          **{u + "i": 1024 ** (i + 1) for i, u in enumerate("KMGTPE")}}


def _quantity(key: str, value) -> float | None:
    """Cores or bytes a request/limit stands for; None when it is not a quantity."""
    text = str(value) if isinstance(value, (int, float, str)) and not isinstance(value, bool) else ""
    if key.startswith("cpu"):
        match = _CPU.fullmatch(text)
        return match and float(match[1]) / (1000 if match[2] else 1)
    match = _MEMORY.fullmatch(text)
    return match and int(match[1]) * _BYTES[match[2]]


def check_resources(section, path) -> dict[str, dict[str, str]]:
    """Each step's CPU and memory requests and limits: `default`, overridden key by key by the step's entry."""
    where = f"{path}: resources"
    if not isinstance(section, dict) or not isinstance(section.get("default"), dict):
        raise ConfigError(f"{where}: expected a mapping with a 'default' entry of {list(RESOURCE_KEYS)}")
    unknown = sorted(set(section) - {"default", *STEPS, *DRIFT_STEPS})
    if unknown:
        raise ConfigError(f"{where}: unknown step(s) {unknown}; steps are {list(STEPS + DRIFT_STEPS)}")
    for name, entry in section.items():
        if not isinstance(entry, dict) or set(entry) - set(RESOURCE_KEYS):
            raise ConfigError(f"{where}.{name}: expected a mapping of some of {list(RESOURCE_KEYS)}, got {entry!r}")
    missing = sorted(set(RESOURCE_KEYS) - set(section["default"]))
    if missing:
        raise ConfigError(f"{where}.default: missing key(s) {missing}")
    steps = {}
    for step in STEPS + DRIFT_STEPS:
        merged = {**section["default"], **section.get(step, {})}
        for key, value in merged.items():
            if not _quantity(key, value):
                form = "cores, e.g. 2, 0.5 or 500m" if key.startswith("cpu") else "bytes, e.g. 512Mi, 2Gi or 1G"
                raise ConfigError(f"{where}.{step}.{key}: {value!r} is not a positive quantity of {form}")
        for kind in ("cpu", "memory"):
            if _quantity(kind, merged[f"{kind}_request"]) > _quantity(kind, merged[f"{kind}_limit"]):
                raise ConfigError(f"{where}.{step}: {kind}_request {merged[f'{kind}_request']!r} exceeds "
                                  f"{kind}_limit {merged[f'{kind}_limit']!r}")
        steps[step] = {key: str(value) for key, value in merged.items()}
    return steps


@dataclass(frozen=True)
class TrainingDefaults:
    schema_uri: str
    tracking_uri: str
    model_name: str
    training_config: dict
    decision: dict  # the decision policy (components.decision), checked
    quality_gates: dict
    baseline_metrics: dict
    deployment_target: str
    namespace: str
    rollout_name: str
    timeout_minutes: float
    resources: dict  # step -> CPU/memory requests and limits, set on the tasks at compile time
    profile_bins: int  # quantile bins of the reference profile (configs/drift.yaml `bins`), set at compile time
    registry_uri: str = ""  # the model registry; "": the tracking URI (components.registry.resolve_registry_uri)

    def as_arguments(self) -> dict:
        """The pipeline's parameters (resources and profile bins are not parameters)."""
        return {k: v for k, v in asdict(self).items() if k not in ("resources", "profile_bins")}


@dataclass(frozen=True)
class DriftDefaults:
    tracking_uri: str
    model_name: str
    config: dict  # checked configs/drift.yaml
    resources: dict
    live: dict  # the gates file's live section, checked, defaults filled in
    registry_uri: str = ""  # the model registry; "": the tracking URI


def load_drift(drift: str | Path = DRIFT, config: str | Path = CONFIG, root: str | Path = ".",
               gates: str | Path = GATES) -> DriftDefaults:
    """The monitoring run's settings: configs/drift.yaml, the registry and resources sections of the training
    config (its training and deploy are not read) and the gates file's live section (the whole file checked)."""
    config, gates = Path(root, config), Path(root, gates)
    doc = read_yaml(config)
    registry = _section(doc, config, "registry", {"tracking_uri", "model_name"})
    gates_doc = read_yaml(gates)
    try:
        check_gates(gates_doc, str(gates))
        live = check_live(gates_doc.get("live"), str(gates))
    except GateConfigError as exc:
        raise ConfigError(str(exc)) from exc
    return DriftDefaults(tracking_uri=registry["tracking_uri"], model_name=registry["model_name"],
                         config=read_drift(Path(root, drift)), resources=check_resources(doc.get("resources"), config),
                         live=live)


def read_drift(path: str | Path) -> dict:
    try:
        return check_drift_config(read_yaml(path), str(path))
    except DriftError as exc:
        raise ConfigError(str(exc)) from exc


def load(config: str | Path = CONFIG, gates: str | Path = GATES, baseline: str | Path = BASELINE,
         root: str | Path = ".", drift: str | Path = DRIFT) -> TrainingDefaults:
    """Read and check the config files (relative paths against `root`)."""
    config, gates, baseline, drift = (Path(root, p) for p in (config, gates, baseline, drift))
    doc = read_yaml(config)
    unknown = sorted(set(doc) - {"data", "registry", "training", "decision", "deploy", "resources"})
    if unknown:
        raise ConfigError(f"{config}: unknown top-level key(s) {unknown}; expected data, registry, training, "
                          "decision (optional), deploy, resources")
    data = _section(doc, config, "data", {"schema_uri"})
    registry = _section(doc, config, "registry", {"tracking_uri", "model_name"})
    deploy = check_deploy(_section(doc, config, "deploy", {"target", "namespace", "rollout_name", "timeout_minutes"}),
                          config)
    resources = check_resources(doc.get("resources"), config)
    gates_doc = read_yaml(gates)
    baseline_doc = read_yaml(baseline)
    try:
        policy = check_decision(doc.get("decision"), f"{config}: decision")
        check_config(doc.get("training"), f"{config} (training)")
        check_gates(gates_doc, str(gates))
        online_of(gates_doc, str(gates))
    except (TrainingConfigError, GateConfigError, DecisionError) as exc:
        raise ConfigError(str(exc)) from exc
    check_baseline(baseline_doc, baseline)
    return TrainingDefaults(schema_uri=data["schema_uri"], tracking_uri=registry["tracking_uri"],
                            model_name=registry["model_name"], training_config=doc["training"], decision=policy,
                            quality_gates=gates_doc, baseline_metrics=baseline_doc,
                            deployment_target=deploy["target"], namespace=deploy["namespace"],
                            rollout_name=deploy["rollout_name"], timeout_minutes=float(deploy["timeout_minutes"]),
                            resources=resources, profile_bins=read_drift(drift)["bins"])
