"""The drift-check pipeline: score the production model's inference log against its training reference."""
from kfp import dsl

from components.drift.component import check_drift
from components.image import DEFAULT_IMAGE, with_image
from components.performance.component import check_performance
from components.trigger.component import trigger_retraining
from pipelines.defaults import DriftDefaults
from pipelines.training import with_credentials, with_resources

NAME = "drift-check"


def build(defaults: DriftDefaults, image: str = DEFAULT_IMAGE):
    """The drift-check pipeline on `image`, its parameter defaults taken from `defaults`."""
    check_op, trigger_op = with_image(check_drift, image), with_image(trigger_retraining, image)
    performance_op = with_image(check_performance, image)

    @dsl.pipeline(name=NAME, description="Compare the inputs the production model served in the last window "
                                         "(its inference log) with its training data: PSI per feature, and "
                                         "the guide's decision whether retraining is due; with `outcomes_uri`, "
                                         "also join the served predictions with their outcomes and judge each "
                                         "version's live performance by `live_gates`; when either says "
                                         "retraining is due, submit "
                                         "one training run on `training_data_uri` (not again while it runs or "
                                         "within `cooldown_hours`): to the KFP API at `kfp_host`, else as a "
                                         "request in the retraining outbox `outbox_uri` for the runner of this "
                                         "pipeline; without `training_data_uri`, nothing is submitted.")
    def drift_check(
        log_uri: str,
        tracking_uri: str = defaults.tracking_uri,
        registry_uri: str = defaults.registry_uri,
        model_name: str = defaults.model_name,
        drift_config: dict = defaults.config,
        pushgateway_url: str = "",
        window_end: str = "",
        training_data_uri: str = "",
        kfp_host: str = "",
        kfp_namespace: str = "",
        experiment_name: str = "drift-retraining",
        service_account: str = "mlops-pipeline-runner",
        outbox_uri: str = "",
        cooldown_hours: float = 6.0,
        training_parameters: dict = {},
        outcomes_uri: str = "",
        live_gates: dict = defaults.live,
    ):
        check = check_op(log_uri=log_uri, tracking_uri=tracking_uri, registry_uri=registry_uri,
                         model_name=model_name,
                         drift_config=drift_config, pushgateway_url=pushgateway_url,
                         window_end=window_end).set_display_name("Check drift")
        performance = performance_op(drift_result=check.outputs["result"], drift_report=check.outputs["report"],
                                     log_uri=log_uri, outcomes_uri=outcomes_uri, tracking_uri=tracking_uri,
                                     registry_uri=registry_uri, model_name=model_name, live_gates=live_gates,
                                     window_end=window_end, pushgateway_url=pushgateway_url,
                                     ).set_display_name("Check live performance")
        # a new log every hour under the same URI, and a push: never answered from the cache
        with dsl.If(performance.outputs["Output"] == "retrain", name="retraining-due"):
            with dsl.If(training_data_uri != "", name="training-data-given"):
                trigger = trigger_op(drift_result=performance.outputs["result"], tracking_uri=tracking_uri,
                                     registry_uri=registry_uri,
                                     model_name=model_name, training_data_uri=training_data_uri, kfp_host=kfp_host,
                                     kfp_namespace=kfp_namespace, experiment_name=experiment_name,
                                     service_account=service_account, outbox_uri=outbox_uri,
                                     cooldown_hours=cooldown_hours, drift_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
                                     training_parameters=training_parameters, pushgateway_url=pushgateway_url,
                                     ).set_display_name("Trigger retraining")
        for task in (check, performance, trigger):
            task.set_caching_options(False)
            with_resources(task, defaults.resources[task.component_spec.name])
            with_credentials(task)

    return drift_check
