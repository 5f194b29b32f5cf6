"""``--tolerance auto``: the calibrated curve, and its adaptation to each face's neighbourhood."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facematch.encode.faces import FaceSettings
from facematch.matching import calibration
from facematch.matching.gallery import Gallery
from facematch.run.pipeline import Pipeline


def _people(rng: np.random.Generator, centres: np.ndarray, spread: float) -> np.ndarray:
    return centres + rng.normal(0, spread / np.sqrt(128), centres.shape)


def test_a_crowded_neighbourhood_gets_a_tighter_tolerance() -> None:
    """Plumbing: 20 people far apart and 20 crowded together; same distance, two answers."""
    rng = np.random.default_rng(0)
    sparse = _people(rng, np.zeros((20, 128)), 1.0)
    crowded = _people(rng, np.full((20, 128), 0.5), 0.45)
    known = np.vstack([sparse, crowded])
    gallery = Gallery.from_faces([(f"p{i:02d}", e) for i, e in enumerate(known)])
    step = rng.normal(0, 1, (2, 128))
    step *= 0.5 / np.linalg.norm(step, axis=1, keepdims=True)
    probes = np.vstack([sparse[0] + step[0], crowded[0] + step[1]])  # both 0.5 from their face
    plain = gallery.nearest(probes, 0.52)
    adapted = gallery.nearest(probes, 0.52, local=True)
    assert [n.best.name for n in plain] == ["p00", "p20"]  # type: ignore[union-attr]
    assert [n.tolerance for n in plain] == [0.52, 0.52]
    assert adapted[0].tolerance > 0.52 > adapted[1].tolerance
    assert adapted[0].within and not adapted[1].within
    assert all(n.tolerance <= calibration.MAX_TOLERANCE for n in adapted)
    # --all-matches uses the same per-face tolerance.
    everyone = gallery.nearest(probes, 0.52, all_matches=True, local=True)
    assert [bool(n.within) for n in everyone] == [True, False]


def test_small_galleries_keep_the_plain_tolerance() -> None:
    rng = np.random.default_rng(1)
    known = _people(rng, np.zeros((calibration.LOCAL_MIN_PEOPLE - 1, 128)), 1.0)
    gallery = Gallery.from_faces([(f"p{i}", e) for i, e in enumerate(known)])
    found = gallery.nearest(known + 0.01, 0.6, local=True)
    assert {n.tolerance for n in found} == {0.6}


def test_the_tolerance_never_exceeds_0_6() -> None:
    tolerances = calibration.local_tolerances(0.58, np.array([1.5, 0.2]), np.array([1.5, 0.2]), 0.8)
    assert tolerances[0] == calibration.MAX_TOLERANCE and tolerances[1] < 0.58


@pytest.mark.slow
def test_real_faces_named_the_same_with_the_adapted_tolerance(data: Path) -> None:
    """Twelve real people known by one photo; their other photos are named as before."""
    tbbt = sorted((data / "people" / "tbbt").iterdir())
    known_files = [sorted(p.iterdir())[0] for p in tbbt]
    known_files += [data / f for f in ("obama.jpg", "biden.jpg", "lin-manuel-miranda.jpg")]
    known_files += [data / "alex-lacamoire.png"]
    probe_files = [sorted(p.iterdir())[1] for p in tbbt] + [data / "obama2.jpg"]
    with Pipeline(FaceSettings(), jobs=2) as run:
        encoded = list(run.encode([str(f) for f in known_files + probe_files]))
    embeddings = [max(e.faces, key=lambda f: f.box.area).embedding for e in encoded]
    names = [p.name for p in tbbt] + ["obama", "biden", "lin", "alex"]
    gallery = Gallery.from_faces(list(zip(names, embeddings[: len(names)], strict=True)))
    probes = np.array(embeddings[len(names) :])
    truth = [p.name for p in tbbt] + ["obama"]
    auto = calibration.auto_tolerance(len(names))
    adapted = gallery.nearest(probes, auto, local=True)
    assert [n.within[0].name if n.within else None for n in adapted] == truth
    assert len({round(n.tolerance, 6) for n in adapted}) > 1  # it did adapt
