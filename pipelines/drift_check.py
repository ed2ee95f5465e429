"""The drift-check pipeline: score the production model's inference log against its training reference."""
from kfp import dsl

from components.drift.component import check_drift
from components.image import DEFAULT_IMAGE, with_image
from pipelines.defaults import DriftDefaults
from pipelines.training import with_credentials, with_resources

NAME = "drift-check"


def build(defaults: DriftDefaults, image: str = DEFAULT_IMAGE):
    """The drift-check pipeline on `image`, its parameter defaults taken from `defaults`."""
    check_op = with_image(check_drift, image)

    @dsl.pipeline(name=NAME, description="Compare the inputs the production model served in the last window "
                                         "(its inference log) with its training data: PSI per feature, and "
                                         "the seed's decision whether retraining is due.")
    def drift_check(
        log_uri: str,
        tracking_uri: str = defaults.tracking_uri,
        model_name: str = defaults.model_name,
        drift_config: dict = defaults.config,
        pushgateway_url: str = "",
    ):
        check = check_op(log_uri=log_uri, tracking_uri=tracking_uri, model_name=model_name,
                         drift_config=drift_config, pushgateway_url=pushgateway_url).set_display_name("Check drift")
        # a new log every hour under the same URI, and a push: never answered from the cache
        check.set_caching_options(False)
        with_resources(check, defaults.resources[check.component_spec.name])
        with_credentials(check)

    return drift_check
