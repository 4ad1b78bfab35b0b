"""A short, seeded fuzz campaign over every reader and the bundle loader (the long one is
``python -m tests.fuzz --cases 10000``, reported in docs/robustness.md)."""

from __future__ import annotations

import pytest

from tests.fuzz import SAMPLES, campaign

CASES = 15


@pytest.fixture(scope="module")
def results():
    return campaign(list(SAMPLES), CASES, seed=2026, log=lambda _: None)


@pytest.mark.parametrize("fmt", list(SAMPLES))
def test_mutated_files_are_opened_or_refused_in_one_sentence(results, fmt):
    outcome = results[fmt]
    if "skipped" in outcome:
        pytest.skip(outcome["skipped"])
    assert outcome.get("failure", 0) == 0 and outcome.get("crash", 0) == 0, outcome["findings"]
    assert outcome.get("refused", 0) + outcome.get("accepted", 0) == CASES
    assert outcome.get("refused", 0) > 0  # the mutations do damage: the test can fail
