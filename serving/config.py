"""Server settings: command-line flags override environment variables, which override defaults."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

# Set by serving.server for its workers: a folder holding one file per worker whose model is loaded.
READY_DIR_ENV = "MLOPS_READY_DIR"


class SettingsError(ValueError):
    """A setting has a value the server cannot use."""


@dataclass(frozen=True)
class Settings:
    model_uri: str | None = None           # MODEL_URI: models:/name@alias, models:/name/3, runs:/..., a path
    model_path: str | None = None          # MODEL_PATH: a model folder (what `mlops model pull` fills)
    model_name: str | None = None          # MODEL_NAME: the name in /v1/models/<name>:predict and metric labels
    model_version: str | None = None       # MODEL_VERSION: overrides what the model folder says
    model_sha256: str | None = None        # MODEL_SHA256: the registry's hash of the model file; refused if unequal
    model_role: str = "stable"             # MODEL_ROLE: canary | stable (from the pod label)
    model_role_file: str | None = None     # MODEL_ROLE_FILE: downward-API file with the current pod label
    schema_uri: str | None = None          # SCHEMA_URI: the contract, when the model folder carries none
    host: str = "0.0.0.0"                  # HOST
    port: int = 8080                       # PORT
    metrics_port: int = 9090               # METRICS_PORT
    workers: int = 4                       # WORKERS: processes, each with the model loaded
    max_batch_size: int = 32               # MAX_BATCH_SIZE: rows per micro-batch
    max_batch_wait_ms: float = 1.0         # MAX_BATCH_WAIT_MS: wait for more rows when requests overlap
    max_body_bytes: int = 1_048_576        # MAX_BODY_BYTES: larger requests get 413
    max_in_flight: int = 64                # MAX_IN_FLIGHT: prediction requests a worker holds; more get 503
    body_timeout_seconds: float = 10.0     # BODY_TIMEOUT_SECONDS: an admitted request's body must arrive by then
    inference_log_uri: str | None = None   # INFERENCE_LOG_URI: folder or fsspec URL; unset = no log
    inference_log_sample_rate: float = 1.0  # INFERENCE_LOG_SAMPLE_RATE: share of rows logged
    inference_log_queue_size: int = 10_000  # INFERENCE_LOG_QUEUE_SIZE: requests waiting to be written
    inference_log_flush_seconds: float = 5.0  # INFERENCE_LOG_FLUSH_SECONDS
    inference_log_attempts: int = 3        # INFERENCE_LOG_ATTEMPTS: tries per file before its rows are dropped
    inference_log_backoff_seconds: float = 0.5  # INFERENCE_LOG_BACKOFF_SECONDS: first retry delay, then doubled
    fail_fast: bool = False                # FAIL_FAST: exit non-zero when the model cannot be loaded

    @staticmethod
    def env_name(field: str) -> str:
        return field.upper()

    @classmethod
    def from_env(cls, env=None, **overrides) -> "Settings":
        env = os.environ if env is None else env
        values = {}
        for f in fields(cls):
            raw = overrides.get(f.name)
            if raw is None:
                raw = env.get(cls.env_name(f.name))
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, f.type, raw)
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if not (self.model_uri or self.model_path):
            raise SettingsError("no model: give --model-uri / MODEL_URI or MODEL_PATH")
        if self.model_role not in ("canary", "stable"):
            raise SettingsError(f"MODEL_ROLE must be 'canary' or 'stable', got {self.model_role!r}")
        if not self.body_timeout_seconds > 0:
            raise SettingsError(f"BODY_TIMEOUT_SECONDS must be above 0, got {self.body_timeout_seconds}")
        if not 0.0 <= self.inference_log_sample_rate <= 1.0:
            raise SettingsError(f"INFERENCE_LOG_SAMPLE_RATE must be in [0, 1], got {self.inference_log_sample_rate}")
        for name in ("workers", "max_batch_size", "max_body_bytes", "max_in_flight", "inference_log_queue_size",
                     "inference_log_attempts"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{self.env_name(name)} must be at least 1, got {getattr(self, name)}")

    def to_env(self) -> dict[str, str]:
        """The settings as environment variables, for worker processes."""
        return {self.env_name(k): str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in asdict(self).items() if v is not None}


def _convert(name: str, kind: str, raw):
    try:
        if "bool" in kind:
            if isinstance(raw, bool):
                return raw
            if str(raw).lower() in ("1", "true", "yes", "on"):
                return True
            if str(raw).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        return str(raw)
    except ValueError:
        raise SettingsError(f"{Settings.env_name(name)}: cannot use {raw!r} ({kind.split(' ')[0]} expected)") from None
