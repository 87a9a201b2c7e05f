"""No service test may skip silently in CI: CI=1 counts as CI, as CI=true does."""

from __future__ import annotations

import pytest

from tests.support.services import in_ci


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", " True ", "on"])
def test_ci_values_mean_ci(value: str) -> None:
    assert in_ci(value)


@pytest.mark.parametrize("value", [None, "", "0", "false", "False", "no", "off"])
def test_other_values_do_not(value: str | None) -> None:
    assert not in_ci(value)
