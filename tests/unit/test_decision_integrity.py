"""decision.json is read only as it was registered: its bytes checked against the sha256 given."""
import pytest

from components import decision
from components.modelfile import ModelIntegrityError

POLICY = {"objective": "fixed", "threshold": 0.3}


def test_the_registered_bytes_load_and_any_others_are_refused(tmp_path):
    decision.write(tmp_path, POLICY, 0.3, {})
    registered = decision.sha256(tmp_path)
    assert decision.read(tmp_path, registered)["threshold"] == 0.3
    (tmp_path / decision.FILE).write_text((tmp_path / decision.FILE).read_text().replace("0.3", "0.9"))
    with pytest.raises(ModelIntegrityError, match=rf"{tmp_path / decision.FILE}: sha256 {decision.sha256(tmp_path)} "
                                                  f"differs from the registered decision_sha256 {registered}"):
        decision.read(tmp_path, registered)
    assert decision.read(tmp_path)["threshold"] == 0.9  # unchecked: a candidate nobody registered yet


def test_a_registered_decision_that_is_gone_is_refused_and_none_registered_is_one_half(tmp_path):
    with pytest.raises(ModelIntegrityError, match=rf"{decision.FILE}: missing, but registered with decision_sha256"):
        decision.read(tmp_path, "0" * 64)
    assert decision.sha256(tmp_path) is None and decision.threshold_of(decision.read(tmp_path)) == 0.5
