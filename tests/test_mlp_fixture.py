"""The MLP trains exactly as it did before the engine learned other model families."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import mlp_cases  # noqa: E402


def test_mlp_results_are_those_recorded_before_the_family_seam():
    recorded = json.loads(mlp_cases.FIXTURE.read_text())
    now = mlp_cases.results()
    assert list(now) == list(recorded)
    for name, results in now.items():
        for got, want in zip(map(mlp_cases.summary, results), recorded[name], strict=True):
            for key in ("stopped_because", "examples_seen", "examples_seen_at_best"):
                assert got[key] == want[key], (name, key)
            assert got["best_valid_error"] == pytest.approx(want["best_valid_error"], abs=1e-6), name
            assert len(got["curve"]) == len(want["curve"]), name
            for a, b in zip(got["curve"], want["curve"]):
                assert a[0] == b[0] and a[1:] == pytest.approx(b[1:], rel=1e-4, abs=1e-6), (name, a[0])
            for k, sums in want["params"].items():
                assert got["params"][k] == pytest.approx(sums, rel=1e-4, abs=1e-5), (name, k)
