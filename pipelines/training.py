"""The training pipeline: validate -> train -> evaluate -> gate -> (if passed) register."""
from kfp import dsl, kubernetes

from components.deploy.component import deploy_model
from components.evaluate.component import evaluate_model
from components.gate.component import quality_gate, stop_on_failed_gate
from components.image import DEFAULT_IMAGE, with_image
from components.register.component import register_model
from components.train.component import train_model
from components.validate.component import validate_data
from pipelines.defaults import TrainingDefaults

NAME = "training"
# Kubernetes Secret whose keys become environment variables of the steps that read data or the registry.
CREDENTIALS_SECRET = "mlops-credentials"
CREDENTIAL_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                   "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


# A step with one of these parameters reads data, a schema file or the registry: it gets the credentials.
READS_STORAGE = frozenset({"data_uri", "schema_uri", "tracking_uri"})


def with_credentials(task: dsl.PipelineTask) -> dsl.PipelineTask:
    return kubernetes.use_secret_as_env(task, CREDENTIALS_SECRET, {k: k for k in CREDENTIAL_KEYS}, optional=True)


def with_resources(task: dsl.PipelineTask, resources: dict[str, str]) -> dsl.PipelineTask:
    return (task.set_cpu_request(resources["cpu_request"]).set_cpu_limit(resources["cpu_limit"])
            .set_memory_request(resources["memory_request"]).set_memory_limit(resources["memory_limit"]))


def build(defaults: TrainingDefaults, image: str = DEFAULT_IMAGE, git_commit: str = "unknown"):
    """The training pipeline on `image`, its parameter defaults taken from `defaults`; `git_commit` is the
    default of the parameter of that name (the commit the compiled pipeline was built from)."""
    validate_op, train_op, evaluate_op, gate_op, register_op, deploy_op, stop_op = (
        with_image(c, image) for c in (validate_data, train_model, evaluate_model, quality_gate, register_model,
                                       deploy_model, stop_on_failed_gate))

    @dsl.pipeline(name=NAME, description="Validate, train, evaluate and gate a tabular classifier; "
                                         "register it in MLflow (alias 'staged') when every gate passes, "
                                         "then deploy it (canary with automated analysis by default).")
    def training(
        data_uri: str,
        schema_uri: str = defaults.schema_uri,
        tracking_uri: str = defaults.tracking_uri,
        registry_uri: str = defaults.registry_uri,
        model_name: str = defaults.model_name,
        training_config: dict = defaults.training_config,
        decision: dict = defaults.decision,
        quality_gates: dict = defaults.quality_gates,
        baseline_metrics: dict = defaults.baseline_metrics,
        git_commit: str = git_commit,
        deployment_target: str = defaults.deployment_target,
        namespace: str = defaults.namespace,
        rollout_name: str = defaults.rollout_name,
        timeout_minutes: float = defaults.timeout_minutes,
        trigger_reason: str = "manual",
        trigger_details: str = "",
    ):
        validate = validate_op(data_uri=data_uri, schema_uri=schema_uri).set_display_name("Validate data")
        train = train_op(validated=validate.outputs["validated"], schema_uri=schema_uri,
                         training_config=training_config, decision=decision,
                         profile_bins=defaults.profile_bins).set_display_name("Train model")
        evaluate = evaluate_op(model=train.outputs["model"], holdout=train.outputs["holdout"],
                               importances=train.outputs["importances"],
                               model_sha256=train.outputs["model_sha256"], schema_uri=schema_uri,
                               tracking_uri=tracking_uri, registry_uri=registry_uri, model_name=model_name,
                               baseline_metrics=baseline_metrics,
                               quality_gates=quality_gates).set_display_name("Evaluate against baseline")
        gate = gate_op(evaluation=evaluate.outputs["evaluation"],
                       quality_gates=quality_gates).set_display_name("Quality gate")
        with dsl.If(gate.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (KFP syntax)
            register = register_op(
                model=train.outputs["model"], evaluation=evaluate.outputs["evaluation"],
                gate_report=gate.outputs["gate_report"], importances=train.outputs["importances"],
                reference_profile=train.outputs["reference_profile"],
                schema_uri=schema_uri, tracking_uri=tracking_uri, registry_uri=registry_uri,
                model_name=model_name,
                training_config=training_config, data_sha256=validate.outputs["data_sha256"],
                config_sha256=train.outputs["config_sha256"], git_commit=git_commit,
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, trigger_reason=trigger_reason,
                trigger_details=trigger_details,
            ).set_display_name("Register model").set_retry(3, backoff_duration="30s", backoff_factor=2)
            deploy = deploy_op(
                tracking_uri=tracking_uri, registry_uri=registry_uri, model_name=model_name,
                model_version=register.outputs["Output"],
                deployment_target=deployment_target, namespace=namespace, rollout_name=rollout_name,
                timeout_minutes=timeout_minutes, quality_gates=quality_gates,
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            ).set_display_name("Deploy model")
        with dsl.Else(name="gate-failed"):
            stop = stop_op(gate_report=gate.outputs["gate_report"]).set_display_name("Stop: quality gate failed")
        # Inputs are URIs whose content can change under the same name, and evaluate/register talk
        # to the registry: no step may be answered from the cache.
        for task in (validate, train, evaluate, gate, register, deploy, stop):
            task.set_caching_options(False)
            with_resources(task, defaults.resources[task.component_spec.name])
            if READS_STORAGE & set(task.component_spec.inputs):
                with_credentials(task)

    return training
