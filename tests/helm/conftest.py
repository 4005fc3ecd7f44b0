"""The chart, loaded once, and every values file rendered once, shared by the chart tests."""

from __future__ import annotations

import pytest

from tests.helm.rendering import CASES, CHART, helm, render


@pytest.fixture(scope="module")
def chart():
    return helm.Chart.load(str(CHART))


@pytest.fixture(scope="module")
def rendered(chart):
    return {case_id: render(chart, values) for values, case_id in
            [(p.values[0], p.values[1]) for p in CASES]}
