"""The `online` gates section and the canary analysis arguments made from it."""
import math

import pytest
import yaml

from components.deploy import online
from components.gates import GateConfigError
from tests.analysis import argo
from tests.conftest import ROOT
from tests.manifests.crd import ANALYSIS_TEMPLATE

SECTION = {"max_latency_p95_seconds": 0.1, "max_error_rate": 0.01, "max_client_error_rate_increase": 0.02,
           "max_shed_rate_increase": 0.02, "max_flag_rate_ratio_drift": 2, "min_flagged_for_flag_rate": 20}


def test_the_documented_section_is_valid_and_complete():
    documented = yaml.safe_load(online.__doc__.split("\n\n")[1])
    assert online.check_online(documented, "doc") == SECTION


def test_the_flag_rate_keys_default_to_the_configs_of_record():
    older = {k: v for k, v in SECTION.items() if k not in ("max_flag_rate_ratio_drift", "min_flagged_for_flag_rate")}
    assert online.check_online({"online": older}) == SECTION  # a gates file written before they existed
    of_record = yaml.safe_load((ROOT / "configs" / "quality_gates.yaml").read_text())
    assert online.check_online(of_record) == SECTION


def test_a_whole_float_count_reads_as_an_int():  # KFP passes the numbers of dict parameters as floats
    checked = online.check_online({"online": {**SECTION, "min_flagged_for_flag_rate": 20.0}})
    assert checked["min_flagged_for_flag_rate"] == 20 and isinstance(checked["min_flagged_for_flag_rate"], int)


def test_analysis_args_name_the_candidate_and_carry_the_thresholds():
    args = online.analysis_args("fraud-detection", 7, online.check_online({"online": SECTION}), 3.25)
    assert args == {"model-name": "fraud-detection", "model-version": "7", "expected-flag-rate-ratio": "3.25",
                    "max-latency-p95-seconds": "0.1", "max-error-rate": "0.01",
                    "max-client-error-rate-increase": "0.02", "max-shed-rate-increase": "0.02",
                    "max-flag-rate-ratio-drift": "2", "min-flagged-for-flag-rate": "20"}


def test_analysis_args_are_exactly_what_the_template_needs():
    template = yaml.safe_load(ANALYSIS_TEMPLATE.read_text())
    without_default = {a["name"] for a in template["spec"]["args"] if "value" not in a}
    args = online.analysis_args("m", "1", SECTION, 1.0)
    assert set(args) == without_default
    argo.resolve(template, args)  # every {{args.*}} resolves


@pytest.mark.parametrize("value,text",
                         [(1e-5, "0.00001"), (2, "2"), (0.25, "0.25"), (1.0, "1.0"), (3e-7, "0.0000003")])
def test_thresholds_are_plain_decimals_the_condition_language_reads(value, text):
    assert online.plain_number(value) == text
    assert float(text) == value


BAD = {
    "no section": ({"gates": {}}, "expected an 'online' section"),
    "not a mapping": ({"online": [0.1]}, "expected an 'online' section"),
    "unknown key": ({"online": {**SECTION, "max_latency_ms": 100}}, "unknown key(s) ['max_latency_ms']"),
    "missing key": ({"online": {k: v for k, v in SECTION.items() if k != "max_error_rate"}},
                    "lacks ['max_error_rate']"),
    "string": ({"online": {**SECTION, "max_error_rate": "1%"}},
               "online.max_error_rate must be a finite number, got '1%'"),
    "bool": ({"online": {**SECTION, "max_shed_rate_increase": True}},
             "online.max_shed_rate_increase must be a finite number, got True"),
    "NaN": ({"online": {**SECTION, "max_error_rate": math.nan}},
            "online.max_error_rate must be a finite number, got nan"),
    "inf": ({"online": {**SECTION, "max_latency_p95_seconds": math.inf}},
            "online.max_latency_p95_seconds must be a finite number, got inf"),
    "negative": ({"online": {**SECTION, "max_client_error_rate_increase": -0.01}},
                 "online.max_client_error_rate_increase is a ratio of requests (0.01 is 1 %), so between 0 and 1; "
                 "got -0.01"),
    "percent, not ratio": ({"online": {**SECTION, "max_error_rate": 5}}, "online.max_error_rate is a ratio"),
    "zero latency": ({"online": {**SECTION, "max_latency_p95_seconds": 0}},
                     "online.max_latency_p95_seconds must be a positive number of seconds, got 0"),
    "drift factor 1": ({"online": {**SECTION, "max_flag_rate_ratio_drift": 1}},
                       "online.max_flag_rate_ratio_drift is a factor r (observed / expected flag rate ratio within "
                       "[1/r, r]), so above 1; got 1"),
    "drift factor below 1": ({"online": {**SECTION, "max_flag_rate_ratio_drift": 0.5}},
                             "online.max_flag_rate_ratio_drift is a factor r"),
    "drift factor string": ({"online": {**SECTION, "max_flag_rate_ratio_drift": "2x"}},
                            "online.max_flag_rate_ratio_drift must be a finite number, got '2x'"),
    "drift factor inf": ({"online": {**SECTION, "max_flag_rate_ratio_drift": math.inf}},
                         "online.max_flag_rate_ratio_drift must be a finite number, got inf"),
    "no flags needed": ({"online": {**SECTION, "min_flagged_for_flag_rate": 0}},
                        "online.min_flagged_for_flag_rate must be a whole number of rows decided positive, at least 1; "
                        "got 0"),
    "fractional flags": ({"online": {**SECTION, "min_flagged_for_flag_rate": 2.5}},
                         "online.min_flagged_for_flag_rate must be a whole number of rows decided positive, at least "
                         "1; got 2.5"),
    "flags as bool": ({"online": {**SECTION, "min_flagged_for_flag_rate": True}},
                      "online.min_flagged_for_flag_rate must be a whole number of rows decided positive, at least 1; "
                      "got True"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_malformed_online_section_is_refused_naming_key_and_value(case):
    doc, message = case
    with pytest.raises(GateConfigError) as err:
        online.check_online(doc, "configs/quality_gates.yaml")
    assert str(err.value).startswith("configs/quality_gates.yaml: ") and message in str(err.value)


@pytest.mark.parametrize("name,version",
                         [('fraud"x', 1), ("fraud\\x", 1), ("", 1), ("fraud", "latest"), ("fraud", "-1")])
def test_names_and_versions_that_would_break_the_queries_are_refused(name, version):
    with pytest.raises(ValueError, match="model name|model version"):
        online.analysis_args(name, version, SECTION, 1.0)
