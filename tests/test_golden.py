"""Every command still prints and writes what it did when the goldens were recorded.

Runs tests/golden/golden.py's cases (about 45 s): each command in every format on the
repo's real photos, compared byte for byte (timings aside) with tests/golden/expected.json.
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
