"""Fit the CenterFace box -> dlib box mapping on lfw-dev, and measure what it costs.

CenterFace's boxes are taller than the boxes dlib's detectors draw, and the
shape predictor was trained on dlib's. On every lfw-dev face that both HOG and
CenterFace find, this fits the mapping (centre shift as fractions of the
CenterFace box, side as a multiple of its geometric mean side: medians, robust
to the odd mismatch), then encodes a sample of those faces from the mapped box
and from the HOG box and prints the descriptor distances between the two.

    python -m benchmarks.accuracy.fit_centerface_boxes --faces PATH/TO/shared/faces \\
        --embeddings lfw-dev-default.npz [--sample 600]

``--embeddings`` (formerly ``--hog-boxes``) is an .npz with the default (HOG) boxes and
embeddings of lfw-dev (arrays paths, image, boxes, embeddings), as ``lfw_faces
--save-faces`` writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from benchmarks import harness
from facematch.detect import detectors
from facematch.detect.detectors import BoxMapping
from facematch.encode import engines
from facematch.encode.faces import FaceSettings, describe
from facematch.records import FaceBox
from facematch.sources.images import load_rgb


def best_match(hog: FaceBox, raw: np.ndarray) -> np.ndarray | None:
    """The CenterFace row whose box overlaps the HOG box most (IoU > 0.3), if any."""
    if len(raw) == 0:
        return None
    x1 = np.maximum(raw[:, 0], hog.left)
    y1 = np.maximum(raw[:, 1], hog.top)
    x2 = np.minimum(raw[:, 2], hog.right)
    y2 = np.minimum(raw[:, 3], hog.bottom)
    shared = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = (raw[:, 2] - raw[:, 0]) * (raw[:, 3] - raw[:, 1]) + hog.area - shared
    iou = shared / union
    best = int(np.argmax(iou))
    return raw[best] if iou[best] > 0.3 else None


def main(argv: Sequence[str] | None = None) -> None:
    parser = harness.parser(__doc__)
    harness.add_faces(parser)
    harness.add_embeddings(parser, "--hog-boxes", required=True)
    parser.add_argument("--sample", type=int, default=600, help="faces to encode both ways")
    args = parser.parse_args(argv)

    data = harness.load_embeddings(args.embeddings)
    root = args.faces / "lfw-dev"
    centerface = detectors.centerface()
    pairs: list[tuple[int, FaceBox, np.ndarray]] = []
    missed = 0
    for row, (image_index, box) in enumerate(zip(data.image, data.boxes, strict=True)):
        image = load_rgb(root / data.paths[image_index])
        # lfw-dev photos are 250 px: CenterFace runs on them as they are (no shrinking).
        raw = centerface.raw(image, detectors.CENTERFACE_THRESHOLD)
        raw = raw[detectors.non_maximum_suppression(raw[:, :4], raw[:, 4])]
        hog = FaceBox(*(int(v) for v in box))
        found = best_match(hog, raw)
        if found is None:
            missed += 1
            continue
        pairs.append((row, hog, found))

    hog_boxes = np.array([[b.left, b.top, b.right, b.bottom] for _, b, _ in pairs], float)
    cf = np.array([f[:4] for _, _, f in pairs], float)
    cf_w, cf_h = cf[:, 2] - cf[:, 0], cf[:, 3] - cf[:, 1]
    shift_x = (hog_boxes[:, [0, 2]].mean(1) - cf[:, [0, 2]].mean(1)) / cf_w
    shift_y = (hog_boxes[:, [1, 3]].mean(1) - cf[:, [1, 3]].mean(1)) / cf_h
    side = np.sqrt((hog_boxes[:, 2] - hog_boxes[:, 0]) * (hog_boxes[:, 3] - hog_boxes[:, 1]))
    ratio = side / np.sqrt(cf_w * cf_h)
    mapping = BoxMapping(
        float(np.median(shift_x)), float(np.median(shift_y)), float(np.median(ratio))
    )
    print(f"faces found by both: {len(pairs)}; HOG faces CenterFace misses: {missed}")
    print(f"CenterFace box height / width: median {np.median(cf_h / cf_w):.3f}")
    print(
        f"mapping: shift_x={mapping.shift_x:.4f} shift_y={mapping.shift_y:.4f} "
        f"side={mapping.side:.4f}"
    )

    mapped = np.array([mapping.apply(*f[:4]).css() for _, _, f in pairs])
    hog_css = np.array([b.css() for _, b, _ in pairs])
    error = np.abs(mapped - hog_css) / side[:, None]
    print(
        f"mapped box vs HOG box, per side, as a share of the box side: median "
        f"{np.median(error):.3f}, p90 {np.percentile(error, 90):.3f}"
    )

    settings = FaceSettings()
    choice = engines.prepare("onnx", None)
    encoder = engines.encoder(choice, 1, settings.jitters, settings.mirror)
    rng = np.random.default_rng(16)
    chosen = rng.choice(len(pairs), size=min(args.sample, len(pairs)), replace=False)
    distances = []
    for index in sorted(chosen):
        row, _, found = pairs[index]
        image = load_rgb(root / data.paths[data.image[row]])
        (face,) = describe(image, [mapping.apply(*found[:4])], replace(settings), encoder)
        distances.append(float(np.linalg.norm(face.embedding - data.embeddings[row])))
    spread = np.array(distances)
    print(
        f"descriptor distance, mapped CenterFace box vs HOG box ({len(spread)} faces): "
        f"median {np.median(spread):.4f}, p99 {np.percentile(spread, 99):.4f}, "
        f"max {spread.max():.4f}"
    )


if __name__ == "__main__":
    main()
