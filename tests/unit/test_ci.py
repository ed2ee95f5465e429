"""Under CI=true a test never skips for a missing tool: it fails, so a green CI means every layer ran."""
import re

import pytest

from tests import conftest
from tests.conftest import ROOT


def test_a_missing_tool_fails_under_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setattr(conftest, "CI", True)
    with pytest.raises(pytest.fail.Exception, match="no-such-tool-4711 is not installed.*CI=true"):
        conftest.require_tool("no-such-tool-4711")
    monkeypatch.setattr(conftest, "CI", False)
    with pytest.raises(pytest.skip.Exception, match="no-such-tool-4711 is not installed"):
        conftest.require_tool("no-such-tool-4711")
    assert conftest.require_tool("python").endswith("python")


def test_no_test_skips_on_its_own():
    """require_tool is the one way a test may skip, so CI=true can turn every skip into a failure."""
    pattern = re.compile(r"pytest\.skip\(|mark\.skip(if)?\b|importorskip|mark\.xfail|pytest\.xfail\(")
    offenders = [f"{path.relative_to(ROOT)}:{n}" for path in (ROOT / "tests").rglob("*.py")
                 if path not in (ROOT / "tests" / "conftest.py", ROOT / "tests" / "unit" / "test_ci.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
