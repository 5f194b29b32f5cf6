"""Faces -> cloaked copies that dlib-model matchers no longer match, and their verification.

The cloak is an untargeted projected gradient attack in an L-infinity budget:
each step pushes the face's 128-d descriptor away from the original one,
averaged over the ways an adversary may see the photo (5- and 68-point
alignment, small shifts, scales and rotations of the alignment, the mirror
image, JPEG re-saves and, for the strong level, blur and downscales).

Each face is worked on a fixed-size canvas around it, at the face chip's
scale: at most ``MAX_CHIP_SIDE`` canvas pixels per chip side, the photo's own
pixels when the face is smaller. The perturbation found there is resized
smoothly (bilinear) onto the photo's pixels, so it is a pattern at the scale
the descriptor sees, whatever the size of the photo, and it survives the
resizing detectors and matchers apply to large photos.

Transformations that cannot be differentiated (JPEG, Pillow's blur and
resizing, rounding to 8 bits) are applied for real in the forward pass, and
their gradient is that of a Gaussian blur of matching strength (BPDA).

Every copy is verified as an adversary would try it (:func:`verify`): read
back, faces detected again, encoded with both alignments, also after a JPEG
re-save, a downscale and a blur, and compared with the original face; and,
where it is installed, by SFace (:mod:`facematch.encode.sface`), a second
model the cloak is not made against, whose verdict is reported beside dlib's.

The gradients come from :func:`descriptor_gradient`, the one function that
needs JAX (the optional extra ``facematch[cloak]``); it runs the ONNX graph of
dlib's ResNet (:mod:`facematch.models.resnet_onnx`) through a small interpreter.
"""

from __future__ import annotations

from facematch.privacy.cloak.alignment import (
    as_matrix,
    bilinear_chips,
    chip_transform,
    gaussian_kernel,
)
from facematch.privacy.cloak.canvas import (
    Canvas,
    Sample,
    cloak_canvas,
    cut_canvas,
    draw_samples,
    paste_delta,
    place_canvas,
    seen_as,
)
from facematch.privacy.cloak.files import (
    CloakTask,
    check_copy,
    cloak_failed,
    cloak_file,
    count_failed,
    faces_in_file,
    find_original_faces,
    output_name,
    plan_copies,
    report,
    save_cloaked,
    second_model,
    with_faces,
)
from facematch.privacy.cloak.gradients import (
    descriptor_gradient,
    graph_parts,
    jax_available,
    network_function,
    require_extra,
)
from facematch.privacy.cloak.levels import (
    ALIGNMENTS,
    CANVAS,
    EXTRA_MESSAGE,
    JPEG_QUALITY_OUT,
    KERNEL_TAPS,
    LEVELS,
    MATCH_THRESHOLD,
    MAX_CHIP_SIDE,
    VARIANTS,
    FloatImage,
    Level,
    LevelName,
)
from facematch.privacy.cloak.photo import (
    SECOND_MODEL,
    Encoders,
    cloak_photo,
    describe_faces,
    seed_for,
)
from facematch.privacy.cloak.quality import (
    VIEWING_SIDE,
    dssim,
    face_dssim,
    face_region,
    photo_dssim,
    psnr,
)
from facematch.privacy.cloak.verify import (
    FaceCheck,
    adversary_boxes,
    detect_as_matcher,
    variant_image,
    verify,
)

__all__ = [
    "ALIGNMENTS",
    "CANVAS",
    "EXTRA_MESSAGE",
    "JPEG_QUALITY_OUT",
    "KERNEL_TAPS",
    "LEVELS",
    "MATCH_THRESHOLD",
    "MAX_CHIP_SIDE",
    "SECOND_MODEL",
    "VARIANTS",
    "VIEWING_SIDE",
    "Canvas",
    "CloakTask",
    "Encoders",
    "FaceCheck",
    "FloatImage",
    "Level",
    "LevelName",
    "Sample",
    "adversary_boxes",
    "as_matrix",
    "bilinear_chips",
    "check_copy",
    "chip_transform",
    "cloak_canvas",
    "cloak_failed",
    "cloak_file",
    "cloak_photo",
    "count_failed",
    "cut_canvas",
    "describe_faces",
    "descriptor_gradient",
    "detect_as_matcher",
    "draw_samples",
    "dssim",
    "face_dssim",
    "face_region",
    "faces_in_file",
    "find_original_faces",
    "gaussian_kernel",
    "graph_parts",
    "jax_available",
    "network_function",
    "output_name",
    "paste_delta",
    "photo_dssim",
    "place_canvas",
    "plan_copies",
    "psnr",
    "report",
    "require_extra",
    "save_cloaked",
    "second_model",
    "seed_for",
    "seen_as",
    "variant_image",
    "verify",
    "with_faces",
]
