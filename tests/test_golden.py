"""Every command still prints and writes what it did when the goldens were recorded.

Runs tests/golden/golden.py's cases (about 45 s): each command in every format on the
repo's real photos, compared with tests/golden/expected.json byte for byte, but for timings
and the last float bits that differ from one CPU to another (golden.NUMBER_TOLERANCE, and
the cloak's looser LOOSE_CASES).
"""

from __future__ import annotations

import json

import pytest

from tests.golden import golden

pytestmark = pytest.mark.slow


def test_every_command_matches_its_golden_output() -> None:
    expected = json.loads(golden.EXPECTED.read_text())
    differences = golden.differences(expected, golden.run_cases())
    assert differences == []
