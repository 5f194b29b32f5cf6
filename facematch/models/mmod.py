"""dlib's MMOD CNN face detector (``mmod_human_face_detector.dat``) on ONNX Runtime.

dlib runs this network single-threaded without BLAS: tens of CPU seconds for
a 1600 px photo. The network itself is seven convolutions; the rest of dlib's
detector is bookkeeping we redo in numpy, following dlib 20.0's source:

* the net (``examples/dnn_mmod_face_detection_ex.cpp``, ``tools/python/src/
  cnn_face_detector.cpp``): ``loss_mmod<con<1,9,9,1,1, rcon5<rcon5<rcon5<
  downsampler<input_rgb_image_pyramid<pyramid_down<6>>>>>>>>``, where
  downsampler is three 5x5 stride-2 convolutions (16, 32, 32 filters) and
  rcon5 a 5x5 convolution of 45 filters, each followed by affine and relu;
* the input (``dnn/input.h``, ``image_transforms/image_pyramid.h``): the image
  and its pyramid, each level 5/6 of the one before, tiled into one tensor
  (``compute_tiled_image_pyramid_details``) with bilinear ``resize_image``;
  pixels are (value - channel mean) / 256;
* the decoding (``dnn/loss.h``, ``loss_mmod_::to_label``): every output cell
  scoring over 0 is an 80x80 window centred on the input point the cell maps
  to, mapped back from its pyramid level to image pixels; windows sorted by
  score and kept unless they overlap a kept one (``test_box_overlap``);
* upsampling (``pyramid_up`` with ``pyramid_down<2>``) and mapping boxes back,
  as the Python binding does.

The .dat is parsed with :mod:`facematch.models.resnet_onnx`'s reader of dlib's
serialization. Boxes match dlib's within a pixel and scores to about 1e-3
(tests/test_mmod.py; :func:`verify_against_dlib` checks it on the machine at hand).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from facematch.errors import ModelError
from facematch.files import make_private_folder, write_private
from facematch.models.dlib_format import (
    IR_VERSION,
    LONG_BYTES,
    OPSET,
    AffineLayer,
    ConvLayer,
    FormatError,
    IdentityLayer,
    LayerSpec,
    Reader,
    ReluLayer,
    expect_name,
    read_affine,
    read_conv,
    read_header,
    read_layer_state,
    read_relu,
)
from facematch.models.provision import model_digest

CONVERTER_VERSION = "1"
"""Bump whenever the generated model could compute anything differently."""

INPUT_NAME = "pyramid"
OUTPUT_NAME = "scores"
PYRAMID_RATE = 5 / 6  # pyramid_down<6>
PYRAMID_MIN_HEIGHT = 5
FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class MmodNetwork:
    """A parsed mmod_human_face_detector.dat."""

    means: tuple[float, float, float]
    padding: int
    outer_padding: int
    window: tuple[int, int]  # width, height of the detection window in the input tensor
    nms_iou: float
    nms_covered: float
    convs: list[tuple[ConvLayer, AffineLayer | IdentityLayer, bool]]  # conv, affine, relu


def expected_layers() -> list[LayerSpec]:
    """The net from the input layer up to the last con (the loss layer is separate)."""
    specs = [LayerSpec("input")]
    for filters, window, stride in (
        (16, 5, 2),
        (32, 5, 2),
        (32, 5, 2),
        (45, 5, 1),
        (45, 5, 1),
        (45, 5, 1),
    ):
        specs += [
            LayerSpec("con", outputs=filters, window=window, stride=stride),
            LayerSpec("affine"),
            LayerSpec("relu"),
        ]
    return [*specs, LayerSpec("con", outputs=1, window=9, stride=1)]


def _read_loss(reader: Reader) -> tuple[tuple[int, int], float, float]:
    """loss_mmod_ and its mmod_options: the detection window and the NMS overlap test."""
    reader.version("add_loss_layer", range(1, 2))
    expect_name(reader, ("loss_mmod_",), LayerSpec("loss_mmod"))
    start = reader.offset
    version = reader.version("mmod_options", range(1, 5))
    if version == 1:
        windows = [(reader.integer(LONG_BYTES, False), reader.integer(LONG_BYTES, False))]
    else:
        windows = []
        for _ in range(reader.integer(LONG_BYTES, False)):
            reader.version("detector window", range(1, 3))
            size = (reader.integer(LONG_BYTES, False), reader.integer(LONG_BYTES, False))
            reader.take(reader.integer(LONG_BYTES, False))  # label
            windows.append(size)
    if len(windows) != 1:
        raise reader.fail(f"{len(windows)} detection windows, expected 1", start)
    for _ in range(3):  # loss per false alarm and per miss, truth match IoU: training only
        reader.real()
    nms_iou, nms_covered = reader.real(), reader.real()
    reader.real(), reader.real()  # overlaps_ignore: training only
    if version >= 3:
        reader.take(1)  # assume_image_pyramid
    if version >= 4 and reader.boolean():
        raise reader.fail("bounding box regression is not supported", start)
    if version >= 4:
        reader.real()  # bbr_lambda
    return windows[0], nms_iou, nms_covered


def _read_affine_or_bn(reader: Reader, spec: LayerSpec) -> AffineLayer | IdentityLayer:
    """affine_, or a trained bn_con2 that dlib turns into one as it loads it (layers.h):
    gamma / sqrt(running variance + eps) and beta - that gamma * running mean."""
    start = reader.offset
    name = reader.version_string()
    reader.offset = start
    if name != "bn_con2":
        return read_affine(reader, spec)
    reader.version_string()
    params = reader.tensor().ravel()
    gamma_dims = reader.alias_tensor()
    reader.alias_tensor()  # beta
    for _ in range(2):  # means, invstds: training only
        reader.tensor()
    running_means = reader.tensor().ravel()
    running_variances = reader.tensor().ravel()
    reader.integer(LONG_BYTES, False)  # num_updates
    reader.integer(LONG_BYTES, False)  # running_stats_window_size
    for _ in range(4):  # learning-rate and weight-decay multipliers
        reader.real()
    eps = reader.real()
    channels = gamma_dims[1]
    if params.size != 2 * channels or running_means.size != channels:
        raise reader.fail(f"a bn_con layer with {params.size} parameters", start)
    gamma = (params[:channels] / np.sqrt(running_variances + np.float32(eps))).astype(np.float32)
    beta = (params[channels:] - gamma * running_means).astype(np.float32)
    return AffineLayer(gamma=gamma, beta=beta)


def read_network(data: bytes) -> MmodNetwork:
    """Parse the .dat, checking every layer against expected_layers()."""
    reader = Reader(data)
    specs = expected_layers()
    window, nms_iou, nms_covered = _read_loss(reader)
    versions = [read_header(reader, spec) for spec in reversed(specs[2:])][::-1]
    first_version = reader.version("first con layer", range(2, 4))
    name = expect_name(reader, ("input_rgb_image_pyramid", "input_rgb_image_pyramid2"), specs[0])
    red, green, blue = (reader.real() for _ in range(3))
    padding, outer_padding = 10, 11  # the defaults of files written before version 2
    if name == "input_rgb_image_pyramid2":
        padding, outer_padding = (
            reader.integer(LONG_BYTES, False),
            reader.integer(LONG_BYTES, False),
        )
    layers: list[Any] = [read_conv(reader, specs[1])]
    read_layer_state(reader, first_version, on_input=True)
    readers = {"con": read_conv, "affine": _read_affine_or_bn, "relu": read_relu}
    for spec, version in zip(specs[2:], versions, strict=True):
        layers.append(readers[spec.kind](reader, spec))
        read_layer_state(reader, version, on_input=False)
    reader.expect_end()
    convs = []
    index = 0
    while index < len(layers):
        conv = layers[index]
        if index + 1 < len(layers):
            affine, relu = layers[index + 1], layers[index + 2]
            convs.append((conv, affine, isinstance(relu, ReluLayer)))
            index += 3
        else:
            convs.append((conv, IdentityLayer(), False))
            index += 1
    return MmodNetwork(
        (red, green, blue), padding, outer_padding, window, nms_iou, nms_covered, convs
    )


def build_model(network: MmodNetwork) -> Any:
    """The ONNX model: a (1, 3, H, W) float pyramid tensor in, (1, 1, h, w) scores out."""
    from onnx import TensorProto, checker, helper, numpy_helper

    nodes: list[Any] = []
    initializers: list[Any] = []
    current = INPUT_NAME
    for index, (conv, affine, relu) in enumerate(network.convs):
        weights = f"w{index}"
        initializers.append(numpy_helper.from_array(conv.weights, weights))
        inputs = [current, weights]
        if conv.bias is not None:
            initializers.append(numpy_helper.from_array(conv.bias, f"b{index}"))
            inputs.append(f"b{index}")
        rows, cols = conv.weights.shape[2:]
        pad = conv.padding
        out = f"conv{index}"
        nodes.append(
            helper.make_node(
                "Conv",
                inputs,
                [out],
                kernel_shape=[rows, cols],
                strides=[conv.stride, conv.stride],
                pads=[pad, pad, pad, pad],
            )
        )
        if isinstance(affine, AffineLayer):
            shape = (len(affine.gamma), 1, 1)
            initializers.append(numpy_helper.from_array(affine.gamma.reshape(shape), f"g{index}"))
            initializers.append(numpy_helper.from_array(affine.beta.reshape(shape), f"be{index}"))
            nodes.append(helper.make_node("Mul", [out, f"g{index}"], [f"mul{index}"]))
            nodes.append(helper.make_node("Add", [f"mul{index}", f"be{index}"], [f"add{index}"]))
            out = f"add{index}"
        if relu:
            nodes.append(helper.make_node("Relu", [out], [f"relu{index}"]))
            out = f"relu{index}"
        current = out
    nodes.append(helper.make_node("Identity", [current], [OUTPUT_NAME]))
    graph = helper.make_graph(
        nodes,
        "dlib_mmod_human_face_detector",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, "rows", "cols"])],
        [
            helper.make_tensor_value_info(
                OUTPUT_NAME, TensorProto.FLOAT, [1, 1, "out_rows", "out_cols"]
            )
        ],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="facematch.models.mmod",
        producer_version=CONVERTER_VERSION,
    )
    model.ir_version = IR_VERSION
    checker.check_model(model)
    return model


def output_to_input(network: MmodNetwork, point: npt.NDArray[np.float64]) -> Any:
    """dlib's output_tensor_to_input_tensor: an output cell -> a point of the input tensor."""
    for conv, _, _ in reversed(network.convs):
        half = conv.weights.shape[2] // 2
        point = point * conv.stride - conv.padding + half
    return point


# --------------------------------------------------------------------------------------
# The tiled image pyramid (image_pyramid.h)

Rect = tuple[int, int, int, int]  # left, top, right, bottom, inclusive as dlib's rectangle


def pyramid_rects(
    rows: int, cols: int, padding: int, outer_padding: int
) -> tuple[list[Rect], int, int]:
    """compute_tiled_image_pyramid_details for pyramid_down<6>: where each level goes."""
    if rows * cols == 0:
        return [], 0, 0
    sizes = [(cols, rows)]
    while True:
        rows, cols = math.floor(PYRAMID_RATE * rows), math.floor(PYRAMID_RATE * cols)
        if rows * cols == 0 or rows < PYRAMID_MIN_HEIGHT:
            break
        sizes.append((cols, rows))
    total_height = sum(h + padding for _, h in sizes) - padding * 2
    first_width, first_height = sizes[0]
    height = 0
    previous_width = 0
    for width, level_height in sizes:
        if (
            width <= first_width - previous_width - padding
            and (height - first_height) * 2 >= total_height - first_height
        ):
            break
        height += level_height + padding
        previous_width = width
    height -= padding
    tensor_rows, tensor_cols = height + outer_padding * 2, first_width + outer_padding * 2
    rects: list[Rect] = []
    y = outer_padding
    index = 0
    while y < height + outer_padding and index < len(sizes):
        width, level_height = sizes[index]
        rects.append((outer_padding, y, outer_padding + width - 1, y + level_height - 1))
        y += level_height + padding
        index += 1
    y -= padding
    while index < len(sizes):
        width, level_height = sizes[index]
        right, bottom = outer_padding + first_width - 1, y - 1
        rect = (right - (width - 1), bottom - (level_height - 1), right, bottom)
        first = rects[0]
        if not (
            rect[2] < first[0] or rect[0] > first[2] or rect[3] < first[1] or rect[1] > first[3]
        ):
            break
        rects.append(rect)
        y -= level_height + padding
        index += 1
    return rects, tensor_rows, tensor_cols


Resize = Callable[[FloatArray, int, int], FloatArray]
"""(channels, rows, cols) float32 -> (channels, new rows, new cols), as dlib resize_image."""


def resizer_model() -> Any:
    """ONNX Resize, bilinear with corners mapped onto corners: dlib's resize_image.

    ONNX Runtime does this some 30x faster than numpy; it computes the sample
    positions in float32, so values differ from dlib's by up to about 1e-4
    (inside what verify checks: boxes within a pixel, scores within 1e-3).
    """
    from onnx import TensorProto, helper

    node = helper.make_node(
        "Resize",
        ["image", "", "", "size"],
        ["resized"],
        mode="linear",
        coordinate_transformation_mode="align_corners",
    )
    graph = helper.make_graph(
        [node],
        "dlib_resize_image",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "rows", "cols"]),
            helper.make_tensor_value_info("size", TensorProto.INT64, [4]),
        ],
        [
            helper.make_tensor_value_info(
                "resized", TensorProto.FLOAT, [1, 3, "out_rows", "out_cols"]
            )
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def _lround(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """C's lround: halves away from zero (dlib's drectangle -> rectangle)."""
    return (np.sign(values) * np.floor(np.abs(values) + 0.5)).astype(np.int64)


def pyramid_up(image: npt.NDArray[np.uint8], resize: Resize) -> npt.NDArray[np.uint8]:
    """dlib's pyramid_up with pyramid_down<2>: about twice the size, bilinear, truncated."""
    rows, cols = image.shape[:2]
    bottom = _lround(np.array([(rows - 1 + 0.75) * 2]))[0]
    right = _lround(np.array([(cols - 1 + 1.25) * 2]))[0]
    planes = np.moveaxis(image, -1, 0).astype(np.float32)
    resized = resize(planes, int(bottom) + 1, int(right) + 1)
    return np.ascontiguousarray(np.moveaxis(resized.astype(np.uint8), 0, -1))


def pyramid_tensor(
    image: npt.NDArray[np.uint8], network: MmodNetwork, resize: Resize
) -> tuple[FloatArray, list[Rect]]:
    """The input tensor (1, 3, R, C) of input_rgb_image_pyramid and its level rectangles."""
    rows, cols = image.shape[:2]
    rects, tensor_rows, tensor_cols = pyramid_rects(
        rows, cols, network.padding, network.outer_padding
    )
    tensor = np.zeros((3, tensor_rows, tensor_cols), dtype=np.float32)
    if not rects:
        return tensor[None], rects
    means = np.array(network.means, dtype=np.float32)[:, None, None]
    level = (np.moveaxis(image, -1, 0).astype(np.float32) - means) / np.float32(256.0)
    left, top, right, bottom = rects[0]
    tensor[:, top : bottom + 1, left : right + 1] = level
    for left, top, right, bottom in rects[1:]:
        level = resize(level, bottom - top + 1, right - left + 1)
        tensor[:, top : bottom + 1, left : right + 1] = level
    return tensor[None], rects


def _nearest_rect(rects: list[Rect], x: float, y: float) -> int:
    """dlib's nearest_rect for the point (x, y) rounded as dlib converts it."""
    px, py = math.floor(x + 0.5), math.floor(y + 0.5)
    best, best_distance = 0, math.inf
    for index, (left, top, right, bottom) in enumerate(rects):
        if left <= px <= right and top <= py <= bottom:
            return index
        nx, ny = min(max(px, left), right), min(max(py, top), bottom)
        distance = math.hypot(nx - px, ny - py)
        if distance < best_distance:
            best, best_distance = index, distance
    return best


def _overlaps(a: Rect, b: Rect, iou: float, covered: float) -> bool:
    """test_box_overlap: shared area over the area of the box bounding both, or over either."""
    width = min(a[2], b[2]) - max(a[0], b[0]) + 1
    height = min(a[3], b[3]) - max(a[1], b[1]) + 1
    if width <= 0 or height <= 0:
        return False
    inner = width * height
    outer = (max(a[2], b[2]) - min(a[0], b[0]) + 1) * (max(a[3], b[3]) - min(a[1], b[1]) + 1)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inner / outer > iou or inner / area_a > covered or inner / area_b > covered


def decode_scores(
    scores: FloatArray, rects: list[Rect], network: MmodNetwork, threshold: float = 0.0
) -> list[tuple[Rect, float]]:
    """Output scores -> (rectangle in the pyramid's base image, score), after NMS."""
    rows, cols = np.nonzero(scores > threshold)
    found: list[tuple[Rect, float]] = []
    width, height = network.window
    for row, col in zip(rows, cols, strict=True):
        x, y = output_to_input(network, np.array([col, row], dtype=np.float64))
        # centered_drect: a window of width w spans w - 1 between its edges.
        half_w, half_h = (width - 1) / 2, (height - 1) / 2
        level = _nearest_rect(rects, x, y)
        origin_x, origin_y = rects[level][0], rects[level][1]
        corners = np.array(
            [
                x - half_w - origin_x,
                y - half_h - origin_y,
                x + half_w - origin_x,
                y + half_h - origin_y,
            ]
        )
        for _ in range(level):
            corners = corners / PYRAMID_RATE + 0.3
        left, top, right, bottom = (int(v) for v in _lround(corners))
        found.append(((left, top, right, bottom), float(scores[row, col])))
    found.sort(key=lambda item: -item[1])
    kept: list[tuple[Rect, float]] = []
    for rect, score in found:
        if not any(
            _overlaps(other, rect, network.nms_iou, network.nms_covered) for other, _ in kept
        ):
            kept.append((rect, score))
    return kept


# --------------------------------------------------------------------------------------
# The model file and the detector


def model_file(cache_dir: Path, dat_path: Path) -> Path:
    """Where the converted model and its network settings live (name carries the .dat's sha256)."""
    name = f"{Path(dat_path).stem}-{model_digest(dat_path)[:16]}-m{CONVERTER_VERSION}.onnx"
    return Path(cache_dir) / "models" / name


def load_network(dat_path: Path) -> MmodNetwork:
    try:
        data = Path(dat_path).read_bytes()
    except OSError as err:
        raise ModelError(f"cannot read {dat_path}: {err.strerror or err}") from err
    try:
        return read_network(data)
    except FormatError as err:
        where = "" if err.offset is None else f" (at byte {err.offset} of {len(data)})"
        raise ModelError(
            f"{dat_path} is not dlib's MMOD face detector: {err.reason}{where}"
        ) from None


def convert(dat_path: Path, onnx_path: Path) -> None:
    """Convert the .dat and write the ONNX model atomically, readable by us alone."""
    make_private_folder(Path(onnx_path).parent)
    write_private(Path(onnx_path), build_model(load_network(dat_path)).SerializeToString())


class MmodDetector:
    """dlib's CNN face detector, the network on ONNX Runtime, the rest in numpy."""

    def __init__(
        self, dat_path: Path, onnx_path: Path, threads: int = 1, expected_sha256: str | None = None
    ) -> None:
        from facematch.models import runtime

        self.network = load_network(dat_path)
        onnxruntime = runtime.onnxruntime()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        try:
            payload = Path(onnx_path).read_bytes()
        except OSError as err:
            raise ModelError(
                f"cannot load the ONNX model {onnx_path}: {err.strerror or err}"
            ) from err
        self.sha256 = hashlib.sha256(payload).hexdigest()
        if expected_sha256 is not None and self.sha256 != expected_sha256:
            raise ModelError(f"the ONNX model {onnx_path} is not the one that was verified")
        try:
            self._session = onnxruntime.InferenceSession(
                payload, options, providers=["CPUExecutionProvider"]
            )
            self._resizer = onnxruntime.InferenceSession(
                resizer_model().SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types
            reason = (str(err).strip() or type(err).__name__).splitlines()[0]
            raise ModelError(f"cannot load the ONNX model {onnx_path}: {reason}") from err

    def resize(self, planes: FloatArray, rows: int, cols: int) -> FloatArray:
        size = np.array([1, planes.shape[0], rows, cols], dtype=np.int64)
        (resized,) = self._resizer.run(["resized"], {"image": planes[None], "size": size})
        result: FloatArray = resized[0]
        return result

    def detect(
        self, image: npt.NDArray[np.uint8], upsample: int, threshold: float = 0.0
    ) -> list[tuple[Rect, float]]:
        """(left, top, right, bottom) boxes and scores, as dlib's cnn_face_detection_model_v1."""
        work = image
        for _ in range(upsample):
            work = pyramid_up(work, self.resize)
        tensor, rects = pyramid_tensor(work, self.network, self.resize)
        if not rects:
            return []
        (scores,) = self._session.run([OUTPUT_NAME], {INPUT_NAME: tensor})
        found = decode_scores(scores[0, 0], rects, self.network, threshold)
        if upsample == 0:
            return found
        mapped = []
        for (left, top, right, bottom), score in found:
            corners = np.array([left, top, right, bottom], dtype=np.float64)
            for _ in range(upsample):
                corners = corners / 2.0 - np.array([1.25, 0.75, 1.25, 0.75])
            box = tuple(int(v) for v in _lround(corners))
            mapped.append((box, score))
        return mapped  # type: ignore[return-value]


# --------------------------------------------------------------------------------------
# Checking the conversion against dlib, and this process's detector

MAX_BOX_DIFFERENCE = 1
"""Largest difference (pixels, any box edge) from dlib's boxes that we accept; measured 0."""
MAX_SCORE_DIFFERENCE = 1e-3
"""Largest difference from dlib's scores that we accept; measured about 1e-5."""


def _cartoon_face(size: int, face: int, background: tuple[int, int, int]) -> Any:
    """A drawn face both dlib detectors find: enough to exercise every weight and step."""
    from PIL import Image, ImageDraw, ImageFilter

    image = Image.new("RGB", (size, size), background)
    pen = ImageDraw.Draw(image)
    c, w, h = size / 2, face / 2, face * 0.62
    pen.ellipse((c - w, c - h, c + w, c + h), fill=(224, 172, 140))
    for side in (-1, 1):
        x, y = c + side * face * 0.2, c - face * 0.12
        pen.ellipse(
            (x - face * 0.09, y - face * 0.045, x + face * 0.09, y + face * 0.045), fill=(250,) * 3
        )
        pen.ellipse(
            (x - face * 0.04, y - face * 0.04, x + face * 0.04, y + face * 0.04), fill=(50, 30, 20)
        )
        pen.line(
            (x - face * 0.12, y - face * 0.11, x + face * 0.1, y - face * 0.12),
            fill=(80, 50, 30),
            width=max(2, int(face * 0.03)),
        )
    pen.polygon(
        [
            (c, c - face * 0.05),
            (c - face * 0.07, c + face * 0.14),
            (c + face * 0.07, c + face * 0.14),
        ],
        fill=(200, 140, 110),
    )
    pen.ellipse(
        (c - face * 0.18, c + face * 0.24, c + face * 0.18, c + face * 0.33), fill=(170, 80, 80)
    )
    return image.filter(ImageFilter.GaussianBlur(1.5))


def reference_images() -> list[tuple[npt.NDArray[np.uint8], int]]:
    """Deterministic images with faces at two pyramid levels, and one to upsample."""
    from PIL import Image

    wide = Image.new("RGB", (360, 200), (90, 110, 130))
    wide.paste(_cartoon_face(200, 140, (90, 110, 130)), (0, 0))
    wide.paste(_cartoon_face(160, 90, (90, 110, 130)), (200, 20))
    small = _cartoon_face(110, 50, (120, 100, 90))
    return [(np.asarray(wide), 0), (np.asarray(small), 1)]


def compare_with_dlib(
    ours: MmodDetector, dlib_detector: Any, images: list[tuple[npt.NDArray[np.uint8], int]]
) -> tuple[float, float]:
    """(largest box edge difference in pixels, largest score difference) over ``images``;
    infinite when the two find different numbers of faces."""
    worst_box, worst_score = 0.0, 0.0
    for image, upsample in images:
        found = sorted(ours.detect(image, upsample))
        theirs = sorted(
            ((d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom()), d.confidence)
            for d in dlib_detector(image, upsample)
        )
        if len(found) != len(theirs):
            return math.inf, math.inf
        for (box, score), (their_box, their_score) in zip(found, theirs, strict=True):
            worst_box = max(worst_box, *(abs(a - b) for a, b in zip(box, their_box, strict=True)))
            worst_score = max(worst_score, abs(score - their_score))
    return worst_box, worst_score


def ready_detector(folder: Path, threads: int = 1) -> MmodDetector:
    """The converted detector in ``folder / "models"``, checked against dlib once per conversion
    (``provision.ready``)."""
    from facematch.models import dlib_files as models
    from facematch.models import provision

    dat = models.model_path("cnn_detector")
    path = model_file(folder, dat)

    def build() -> None:
        try:
            convert(dat, path)
        except OSError as err:
            raise ModelError(
                f"cannot write the ONNX model to {path.parent}: {err.strerror or err}"
            ) from err

    def verify() -> tuple[str, str]:
        detector = MmodDetector(dat, path, threads)
        box, score = compare_with_dlib(detector, models.cnn_detector(), reference_images())
        if box > MAX_BOX_DIFFERENCE or score > MAX_SCORE_DIFFERENCE:
            path.unlink(missing_ok=True)
            raise ModelError(
                f"the converted CNN detector differs from dlib's (boxes by {box} px, "
                f"scores by {score:.1e})"
            )
        return detector.sha256, f"{box:g} {score:.3e}"

    sha256 = provision.ready(path, build, verify)
    return MmodDetector(dat, path, threads, expected_sha256=sha256)
