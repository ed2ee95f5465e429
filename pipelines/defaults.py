"""The defaults of record in configs/, checked and shaped into pipeline parameter defaults."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from components.evaluate.logic import METRICS
from components.gate.logic import GateConfigError, check_gates, finite_number
from components.train.logic import TrainingConfigError, check_config

CONFIG = "configs/production.yaml"
GATES = "configs/quality_gates.yaml"
BASELINE = "configs/baseline_metrics.yaml"


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
    from components.deploy.logic import TARGETS

    if section["target"] not in TARGETS:
        raise ConfigError(f"{path}: deploy.target must be one of {list(TARGETS)}, got {section['target']!r}")
    for key in ("namespace", "rollout_name"):
        if not isinstance(section[key], str) or not section[key]:
            raise ConfigError(f"{path}: deploy.{key} must be a non-empty string, got {section[key]!r}")
    if not finite_number(section["timeout_minutes"]) or section["timeout_minutes"] < 0:
        raise ConfigError(f"{path}: deploy.timeout_minutes must be a number >= 0 (0: the Rollout's own pauses and "
                          f"analyses plus a margin), got {section['timeout_minutes']!r}")
    return section


@dataclass(frozen=True)
class TrainingDefaults:
    schema_uri: str
    tracking_uri: str
    model_name: str
    training_config: dict
    quality_gates: dict
    baseline_metrics: dict
    deployment_target: str
    namespace: str
    rollout_name: str
    timeout_minutes: float

    def as_arguments(self) -> dict:
        return asdict(self)


def load(config: str | Path = CONFIG, gates: str | Path = GATES, baseline: str | Path = BASELINE,
         root: str | Path = ".") -> TrainingDefaults:
    """Read and check the three config files (relative paths against `root`)."""
    config, gates, baseline = (Path(root, p) for p in (config, gates, baseline))
    doc = read_yaml(config)
    unknown = sorted(set(doc) - {"data", "registry", "training", "deploy"})
    if unknown:
        raise ConfigError(f"{config}: unknown top-level key(s) {unknown}; expected data, registry, training, deploy")
    data = _section(doc, config, "data", {"schema_uri"})
    registry = _section(doc, config, "registry", {"tracking_uri", "model_name"})
    deploy = check_deploy(_section(doc, config, "deploy", {"target", "namespace", "rollout_name", "timeout_minutes"}),
                          config)
    gates_doc = read_yaml(gates)
    baseline_doc = read_yaml(baseline)
    try:
        check_config(doc.get("training"), f"{config} (training)")
        check_gates(gates_doc, str(gates))
    except (TrainingConfigError, GateConfigError) as exc:
        raise ConfigError(str(exc)) from exc
    check_baseline(baseline_doc, baseline)
    return TrainingDefaults(schema_uri=data["schema_uri"], tracking_uri=registry["tracking_uri"],
                            model_name=registry["model_name"], training_config=doc["training"],
                            quality_gates=gates_doc, baseline_metrics=baseline_doc,
                            deployment_target=deploy["target"], namespace=deploy["namespace"],
                            rollout_name=deploy["rollout_name"], timeout_minutes=float(deploy["timeout_minutes"]))
