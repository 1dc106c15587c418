"""Streaming KS and normalised Wasserstein agree with scipy's exact values on 1M rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp, wasserstein_distance

from pipelines.monitoring.build import build_baseline
from pipelines.monitoring.evaluate import evaluate
from pipelines.monitoring.profile import DriftState
from pipelines.monitoring.settings import MonitoringSettings

N = 1_000_000
rng = np.random.default_rng(7)
CASES = {
    "normal": lambda r: (r.normal(size=N), r.normal(size=N)),
    "lognormal": lambda r: (r.lognormal(0, 1, N), r.lognormal(0.15, 1.1, N)),
    "discrete integers": lambda r: (r.poisson(3, N), r.poisson(3.4, N)),
    "shifted normal": lambda r: (r.normal(0, 2, N), r.normal(1.0, 2, N)),
    "integers as float, shifted by one": lambda r: (
        r.integers(0, 50, N).astype(float),
        r.integers(1, 51, N).astype(float),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_binned_ks_and_wasserstein_are_within_0_01_of_scipy(case: str) -> None:
    ref, cur = CASES[case](np.random.default_rng(len(case)))
    baseline = build_baseline(pd.DataFrame({"x": ref}))
    state = DriftState.from_baseline(baseline)
    for part in np.array_split(cur, 4):  # as a scoring pass sees it: in batches
        state.update(pd.DataFrame({"x": part}), None)
    feature = evaluate(baseline, state, MonitoringSettings())["features"][0]
    assert feature["ks"] == pytest.approx(ks_2samp(ref, cur).statistic, abs=0.01)
    exact = wasserstein_distance(ref, cur) / np.std(ref)
    assert feature["wasserstein"] == pytest.approx(exact, abs=0.01)
