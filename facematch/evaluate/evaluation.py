"""How accurate facematch is on your photos: verification and identification figures.

A labelled set is either a folder with one subfolder per person, or a pairs
file (CSV ``file_x,file_y,same``). Every image goes through the same encoding
path and cache as matching; an image where no face is found has no embedding,
and every pair or probe that needs it counts as an error, never dropped.

The descriptor measured is dlib's (what matching uses) or, with ``descriptor="sface"``,
SFace's (``facematch.encode.sface``, the second model ``facematch cloak`` checks its
copies against) of the same faces: the largest face matching finds in each photo,
aligned by its 68-point landmarks. SFace's descriptors are not cached.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from facematch.errors import ModelError, UsageError
from facematch.evaluate import metrics
from facematch.matching.calibration import auto_tolerance
from facematch.output.text import printable
from facematch.run.pipeline import Pipeline
from facematch.sources.images import iter_folder, visible_entries

log = logging.getLogger("facematch")

TRUE_WORDS = {"yes", "true", "1", "y"}
FALSE_WORDS = {"no", "false", "0", "n"}
FAR_TARGETS = (1e-1, 1e-2, 1e-3)

Descriptor = Literal["dlib", "sface"]


@dataclass(frozen=True)
class LabelledSet:
    """Images, and either each image's person (folder form) or labelled pairs."""

    source: str
    images: tuple[str, ...]
    people: tuple[str, ...] | None = None
    pairs: tuple[tuple[int, int, bool], ...] = ()
    # Paths found in the set that cannot be read at all (unreadable folder, FIFO...).
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def kind(self) -> str:
        return "folder" if self.people is not None else "pairs"


def load_labelled(path: str) -> LabelledSet:
    """A folder with a subfolder per person, or a pairs CSV file."""
    if os.path.isdir(path):
        return load_folder(path)
    if os.path.isfile(path):
        return load_pairs(path)
    raise UsageError(f"labelled set not found: {path}")


def load_folder(folder: str) -> LabelledSet:
    """Every image under each person's subfolder; all pairs among them are labelled."""
    images: list[str] = []
    people: list[str] = []
    problems: list[tuple[str, str]] = []
    try:
        subfolders = [e.name for e in visible_entries(folder) if e.is_dir()]
    except OSError as exc:
        raise UsageError(f"cannot read {folder}: {exc.strerror or exc}") from None
    for person in subfolders:
        for found in iter_folder(os.path.join(folder, person), recursive=True):
            if found.problem is None:
                images.append(found.path)
                people.append(person)
            else:
                problems.append((found.path, found.problem))
    if len(set(people)) < 2:
        raise UsageError(f"need at least two people (subfolders with photos) in {folder}")
    n = len(images)
    pairs = tuple((i, j, people[i] == people[j]) for i in range(n) for j in range(i + 1, n))
    return LabelledSet(folder, tuple(images), tuple(people), pairs, tuple(problems))


def parse_same(value: str, where: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise UsageError(f"{where}: cannot read {value!r} as same/different (yes/no, true/false, 1/0)")


def load_pairs(path: str) -> LabelledSet:
    """Pairs from a CSV file ``file_x,file_y,same``; paths are relative to the file."""
    base = os.path.dirname(path)
    images: dict[str, int] = {}
    pairs: list[tuple[int, int, bool]] = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            for number, row in enumerate(csv.reader(f), start=1):
                if not row or not "".join(row).strip():
                    continue
                if len(row) < 3:
                    raise UsageError(f"{path}:{number}: expected file_x,file_y,same")
                first, second, label = (cell.strip() for cell in row[:3])
                paths = [os.path.join(base, p) for p in (first, second)]
                if number == 1 and not any(os.path.exists(p) for p in paths):
                    continue  # a header row
                same = parse_same(label, f"{path}:{number}")
                ids = [images.setdefault(p, len(images)) for p in paths]
                pairs.append((ids[0], ids[1], same))
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a UTF-8 text file of pairs (file_x,file_y,same)") from None
    except (csv.Error, OSError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UsageError(f"cannot read the pairs file {path}: {reason}") from None
    if not pairs:
        raise UsageError(f"no pairs in {path}")
    return LabelledSet(path, tuple(images), None, tuple(pairs))


def embed(
    pipeline: Pipeline, images: Sequence[str], descriptor: Descriptor = "dlib"
) -> tuple[list[NDArray[np.float64] | None], list[tuple[str, str]]]:
    """The largest face's embedding per image (None where there is none), and read errors.

    An image that cannot be read has no embedding either (its pairs count as
    errors), but it is reported apart from the images with no face found.
    """
    embeddings: list[NDArray[np.float64] | None] = []
    unreadable: list[tuple[str, str]] = []
    for encoded in pipeline.encode(list(images)):
        face = encoded.largest_face
        if face is None:
            embeddings.append(None)
        elif descriptor == "sface":
            embeddings.append(sface_embedding(encoded.path, face.landmarks))
        else:
            embeddings.append(face.embedding)
        if encoded.error is not None:
            unreadable.append((encoded.path, encoded.error))
    return embeddings, unreadable


def sface_embedding(path: str, landmarks: Sequence[tuple[int, int]]) -> NDArray[np.float64]:
    """SFace's descriptor of the face with these 68-point landmarks in the photo at ``path``."""
    from facematch.encode import sface
    from facematch.sources.images import load_rgb

    embedding: NDArray[np.float64] = sface.describe_landmarks(load_rgb(path), [landmarks])[0]
    return embedding


def check_descriptor(pipeline: Pipeline, descriptor: Descriptor) -> None:
    """Refuse a descriptor these settings or this installation cannot give."""
    if descriptor != "sface":
        return
    from facematch.models.sface import sface_problem

    problem = sface_problem()
    if problem is not None:
        raise ModelError(problem)
    if pipeline.settings.landmarks != 68:
        raise UsageError("SFace's alignment needs 68-point landmarks: leave --landmarks at 68")


def pair_distances(
    embeddings: Sequence[NDArray[np.float64] | None], pairs: Sequence[tuple[int, int, bool]]
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Distance per pair (NaN where either image has no face) and the labels."""
    distances = np.full(len(pairs), np.nan)
    for k, (i, j, _) in enumerate(pairs):
        a, b = embeddings[i], embeddings[j]
        if a is not None and b is not None:
            distances[k] = float(np.linalg.norm(a - b))
    same = np.array([s for _, _, s in pairs], dtype=bool)
    return distances, same


def person_matrix(
    embeddings: Sequence[NDArray[np.float64] | None], people: Sequence[str]
) -> tuple[NDArray[np.float64], NDArray[np.intp], list[str]]:
    """Leave-one-out distances: each photo to each person's *other* photos (NaN if none)."""
    names = sorted(set(people))
    owner = np.array([names.index(p) for p in people], dtype=np.intp)
    n = len(embeddings)
    matrix = np.full((n, len(names)), np.nan)
    present = [i for i, e in enumerate(embeddings) if e is not None]
    if not present:
        return matrix, owner, names
    stack = np.array([embeddings[i] for i in present])
    photo = np.linalg.norm(stack[:, None, :] - stack[None, :, :], axis=2)
    np.fill_diagonal(photo, np.inf)
    for row, i in enumerate(present):
        best = np.full(len(names), np.inf)
        np.minimum.at(best, owner[present], photo[row])
        matrix[i] = np.where(np.isinf(best), np.nan, best)
    return matrix, owner, names


@dataclass
class Evaluation:
    """Every figure ``facematch evaluate`` prints, as plain data (JSON-ready)."""

    source: str
    kind: str
    tolerance: float
    images: int
    no_face: list[str]
    verification: dict[str, Any]
    descriptor: Descriptor = "dlib"
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    identification: dict[str, Any] | None = None
    clustering: dict[str, Any] | None = None
    recommendation: dict[str, Any] | None = None
    distances: NDArray[np.float64] = field(default_factory=lambda: np.empty(0), repr=False)
    same: NDArray[np.bool_] = field(default_factory=lambda: np.empty(0, dtype=bool), repr=False)

    def as_json(self) -> dict[str, Any]:
        # Named only when it is not dlib's, the descriptor of every earlier report.
        named = {} if self.descriptor == "dlib" else {"descriptor": self.descriptor}
        return {
            "source": self.source,
            "kind": self.kind,
            **named,
            "tolerance": self.tolerance,
            "images": self.images,
            "no_face": self.no_face,
            "unreadable": [{"path": p, "error": e} for p, e in self.unreadable],
            "verification": self.verification,
            "identification": self.identification,
            "recommendation": self.recommendation,
            "clustering": self.clustering,
        }


def _opt(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(float(value), digits)


def verification(
    distances: NDArray[np.float64], same: NDArray[np.bool_], tolerance: float
) -> dict[str, Any]:
    """ROC AUC, EER, TAR at fixed FARs, accuracy at the tolerance, best threshold, 10-fold."""
    counts = metrics.pair_counts(distances, same)
    out: dict[str, Any] = {
        "pairs": counts.n_pairs,
        "same_pairs": counts.n_same,
        "different_pairs": counts.n_different,
        "pairs_without_face": counts.missing,
        "accuracy": _opt(metrics.accuracy_at(distances, same, tolerance)),
    }
    if counts.n_same and counts.n_different:
        roc = metrics.roc_curve(distances, same)
        eer = metrics.equal_error_rate(roc)
        best = metrics.best_threshold(distances, same)
        out["roc_auc"] = _opt(metrics.roc_auc(roc))
        out["eer"] = _opt(eer.eer)
        out["eer_threshold"] = _opt(eer.threshold)
        out["best_threshold"] = _opt(best.threshold)
        out["best_accuracy"] = _opt(best.accuracy)
        for far in FAR_TARGETS:
            point = metrics.tar_at_far(roc, far)
            out[f"tar_at_far_{far:g}"] = None if point is None else _opt(point.tar)
        kfold = metrics.kfold_accuracy(distances, same)
        out["kfold_accuracy"] = None if kfold is None else _opt(kfold.mean)
        out["kfold_std"] = None if kfold is None else _opt(kfold.std)
    return out


def identification(
    embeddings: Sequence[NDArray[np.float64] | None], people: Sequence[str], tolerance: float
) -> dict[str, Any]:
    """Rank-1 and open-set figures, every photo a probe against all the others.

    Known: each photo of a person with another photo is matched against every
    other photo. Stranger: each photo is matched with its own person removed
    from the gallery, so anyone named is a false match.
    """
    matrix, owner, names = person_matrix(embeddings, people)
    with_another = np.array([people.count(p) > 1 for p in people])
    # A set where nobody has a second photo has no known probes, only strangers.
    known = (
        metrics.open_set(matrix[with_another], owner[with_another], tolerance)
        if with_another.any()
        else metrics.OpenSet(0, 0, 0, 0, 0, 0, 0)
    )
    strangers = matrix.copy()
    strangers[np.arange(len(owner)), owner] = np.nan
    no_face = np.array([e is None for e in embeddings])
    strangers[no_face] = np.nan
    unknown = metrics.open_set(strangers, np.full(len(owner), -1), tolerance)
    probes = known.total + unknown.total
    right = known.correct + unknown.stranger_rejected + unknown.no_face_stranger
    return {
        "people": len(names),
        "rank1": _opt(metrics.rank1(matrix[with_another], owner[with_another]))
        if with_another.any()
        else None,
        "known_probes": known.total,
        "correct": known.correct,
        "wrong_person": known.wrong_person,
        "missed": known.missed + known.no_face_known,
        "stranger_probes": unknown.total,
        "strangers_named": unknown.stranger_accepted,
        "stranger_false_match_rate": _opt(unknown.stranger_accepted / max(unknown.total, 1)),
        "open_set_accuracy": _opt(right / max(probes, 1)),
    }


def clustering(
    embeddings: Sequence[NDArray[np.float64] | None], people: Sequence[str]
) -> dict[str, Any]:
    """``facematch cluster``'s grouping (default settings) of one face per photo, scored.

    Photos without a face are left out (and counted). Each stranger is a person of their own.
    """
    from facematch.matching.cluster import FaceClusterer

    present = [i for i, e in enumerate(embeddings) if e is not None]
    truth = [people[i] for i in present]
    clusterer = FaceClusterer()
    if present:
        labels = clusterer.fit_predict(np.array([embeddings[i] for i in present]))
    else:
        labels = np.empty(0, dtype=np.intp)
    scores = metrics.clustering_scores(np.array(truth, dtype=str), labels)
    sizes: dict[str, int] = {}
    for person in truth:
        sizes[person] = sizes.get(person, 0) + 1
    return {
        "faces": scores.faces,
        "photos_without_face": len(embeddings) - len(present),
        "true_people": scores.people,
        "true_groups": sum(1 for count in sizes.values() if count >= clusterer.min_faces),
        "groups": scores.groups,
        "unclustered": scores.unclustered,
        "min_faces": clusterer.min_faces,
        "threshold": clusterer.threshold,
        "bcubed_precision": _opt(scores.bcubed_precision),
        "bcubed_recall": _opt(scores.bcubed_recall),
        "bcubed_f": _opt(scores.bcubed_f),
        "pairwise_precision": _opt(scores.pairwise_precision),
        "pairwise_recall": _opt(scores.pairwise_recall),
        "pairwise_f": _opt(scores.pairwise_f),
        "mixed_groups": scores.mixed_groups,
        "mixed_share": _opt(scores.mixed_share),
        "people_split": scores.split_people,
    }


def evaluate(
    pipeline: Pipeline,
    labelled: LabelledSet,
    tolerance: float | str = "auto",
    target_far: float | None = None,
    strangers: Sequence[str] = (),
    descriptor: Descriptor = "dlib",
) -> Evaluation:
    """Encode a labelled set and compute every figure.

    ``auto`` resolves as matching would: a pair is a gallery of one face; in
    folder form each photo is searched among all the others. For SFace it is the
    cloak check's "still matched" distance, and there are no clustering figures
    (``facematch cluster`` groups dlib's descriptors).
    """
    check_descriptor(pipeline, descriptor)
    if not isinstance(tolerance, float | int):
        gallery = 1 if labelled.people is None else max(len(labelled.images) - 1, 1)
        tolerance = auto_tolerance(gallery)
        if descriptor == "sface":
            from facematch.encode.sface import MATCH_DISTANCE

            tolerance = MATCH_DISTANCE
    embeddings, unreadable = embed(pipeline, labelled.images, descriptor)
    unreadable = list(labelled.problems) + unreadable
    for path, error in unreadable:
        log.error("%s: %s", path, error)
    failed = {path for path, _ in unreadable}
    distances, same = pair_distances(embeddings, labelled.pairs)
    report = Evaluation(
        source=labelled.source,
        kind=labelled.kind,
        tolerance=tolerance,
        images=len(labelled.images),
        no_face=[
            p
            for p, e in zip(labelled.images, embeddings, strict=True)
            if e is None and p not in failed
        ],
        unreadable=unreadable,
        verification=verification(distances, same, tolerance),
        descriptor=descriptor,
        distances=distances,
        same=same,
    )
    if labelled.people is not None:
        report.identification = identification(embeddings, labelled.people, tolerance)
    if labelled.people is not None and descriptor == "dlib":
        stranger_embeddings, stranger_errors = embed(pipeline, strangers)
        for path, error in stranger_errors:
            log.error("%s: %s", path, error)
        report.unreadable += stranger_errors
        report.clustering = clustering(
            list(embeddings) + stranger_embeddings,
            list(labelled.people) + [f"stranger:{path}" for path in strangers],
        )
    if target_far is not None:
        choice = metrics.tolerance_for_far(distances, same, target_far)
        report.recommendation = {
            "target_far": target_far,
            "tolerance": None if choice is None else _opt(choice.tolerance),
            "tar": None if choice is None else _opt(choice.tar),
            "far": None if choice is None else _opt(choice.far, 6),
            "note": None
            if choice is not None
            else f"too few different-person pairs to measure a FAR of {target_far:g} "
            f"(need {metrics.min_different_pairs(target_far)})",
        }
    return report


def render(report: Evaluation) -> str:
    """The report as a readable table."""
    described = "" if report.descriptor == "dlib" else f", described by {report.descriptor}"
    lines = [
        f"{report.source}: {report.images} images ({report.kind}{described}), "
        f"{len(report.no_face)} without a face found, {len(report.unreadable)} unreadable",
        "",
        "verification",
    ]
    labels = {
        "pairs": "pairs",
        "same_pairs": "same-person pairs",
        "different_pairs": "different-person pairs",
        "pairs_without_face": "pairs with no face found or unreadable (errors)",
        "accuracy": f"accuracy at tolerance {report.tolerance:g}",
        "best_threshold": "best threshold",
        "best_accuracy": "accuracy at best threshold",
        "kfold_accuracy": "10-fold accuracy (threshold from 9 folds)",
        "kfold_std": "10-fold standard deviation",
        "roc_auc": "ROC AUC",
        "eer": "equal error rate",
        "eer_threshold": "threshold at equal error rate",
        **{f"tar_at_far_{far:g}": f"true-accept rate at FAR {far:g}" for far in FAR_TARGETS},
    }
    for key, label in labels.items():
        if key in report.verification:
            lines.append(f"  {label:<46} {_show(report.verification[key])}")
    if report.identification is not None:
        ident = report.identification
        lines += [
            "",
            f"identification (every photo against the others, tolerance {report.tolerance:g})",
        ]
        for key, label in [
            ("people", "people"),
            ("rank1", "rank-1 accuracy"),
            ("known_probes", "known probes"),
            ("correct", "  named correctly"),
            ("wrong_person", "  named as someone else"),
            ("missed", "  not named (or no face)"),
            ("stranger_probes", "stranger probes (own person left out)"),
            ("strangers_named", "  strangers named as someone"),
            ("stranger_false_match_rate", "  stranger false-match rate"),
            ("open_set_accuracy", "open-set accuracy (all probes)"),
        ]:
            lines.append(f"  {label:<46} {_show(ident[key])}")
    if report.clustering is not None:
        group = report.clustering
        lines += [
            "",
            f"clustering (facematch cluster defaults: threshold {group['threshold']:g}, "
            f"min faces {group['min_faces']}; one face per photo)",
        ]
        for key, label in [
            ("faces", "faces clustered"),
            ("true_people", "true people (strangers included)"),
            ("true_groups", f"  with at least {group['min_faces']} faces"),
            ("groups", "groups found"),
            ("unclustered", "faces unclustered"),
            ("bcubed_precision", "BCubed precision"),
            ("bcubed_recall", "BCubed recall"),
            ("bcubed_f", "BCubed F"),
            ("pairwise_precision", "pairwise precision"),
            ("pairwise_recall", "pairwise recall"),
            ("pairwise_f", "pairwise F"),
            ("mixed_share", "share of groups mixing people"),
            ("people_split", "people split over several groups"),
        ]:
            lines.append(f"  {label:<46} {_show(group[key])}")
    if report.recommendation is not None:
        rec = report.recommendation
        lines += ["", f"recommended tolerance for FAR <= {rec['target_far']:g}"]
        if rec["tolerance"] is None:
            lines.append(f"  {rec['note']}")
        else:
            lines.append(f"  {'tolerance':<46} {_show(rec['tolerance'])}")
            lines.append(f"  {'true-accept rate there':<46} {_show(rec['tar'])}")
            lines.append(f"  {'false-accept rate there':<46} {_show(rec['far'])}")
    if report.no_face:
        lines += ["", "no face found in:"] + [f"  {printable(p)}" for p in report.no_face]
    if report.unreadable:
        lines += ["", "could not read:"]
        lines += [f"  {printable(p)}: {printable(e)}" for p, e in report.unreadable]
    return "\n".join(lines) + "\n"


def _show(value: Any) -> str:
    if value is None:
        return "n/a (set too small)"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def plot(report: Evaluation, path: str) -> None:
    """ROC curve and same/different distance histograms with the tolerance marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'facematch[plot]'") from None
    finite = ~np.isnan(report.distances)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    if report.same.any() and (~report.same).any():
        roc = metrics.roc_curve(report.distances, report.same)
        left.plot(roc.far, roc.tar)
    left.set_xscale("symlog", linthresh=1e-3)
    left.set_xlabel("false accept rate")
    left.set_ylabel("true accept rate")
    left.set_title("ROC")
    bins = np.linspace(0, max(1.2, float(np.nanmax(report.distances, initial=1.2))), 60)
    right.hist(report.distances[finite & report.same], bins=bins, alpha=0.6, label="same person")
    right.hist(report.distances[finite & ~report.same], bins=bins, alpha=0.6, label="different")
    right.axvline(
        report.tolerance, color="black", linestyle="--", label=f"tolerance {report.tolerance:g}"
    )
    right.set_xlabel("distance")
    right.set_ylabel("pairs")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
