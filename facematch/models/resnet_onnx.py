"""Convert dlib's face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``) to ONNX.

dlib-bin runs this network single-threaded without BLAS. The same weights in
ONNX Runtime give the same 128-d descriptors (to float rounding) several times
faster, so we translate the .dat file ourselves instead of depending on dlib to
export it (it cannot).

Everything here follows dlib 20.0's own source:

* ``dlib/serialize.h``: integers are a control byte (byte count in the low
  nibble, 0x80 = negative) then that many little-endian magnitude bytes; bools
  are the ASCII bytes ``'0'``/``'1'``; strings are an integer length then the
  bytes; scalar floats are a ``float_details`` (``dlib/float_details.h``): an
  int64 mantissa and an int16 exponent, both as integers above.
* ``dlib/cuda/tensor.h``: a tensor is version 2, four int64 dims, then raw
  little-endian float32 data (not the portable float format above).
* ``dlib/dnn/core.h``: a layer writes its version, then the whole network
  below it, then its own parameters. The file therefore holds every layer's
  header from the loss layer down, then every layer's parameters from the
  input layer up. Tag and skip layers carry no id in the file, so the network
  structure (``anet_type`` in ``tools/python/src/face_recognition.cpp``) has
  to be known here; we check every layer in the file against it.

The ONNX graph takes uint8 chips (N, 150, 150, 3) exactly as
``dlib.get_face_chip`` returns them and does dlib's input scaling itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from facematch.errors import ModelError
from facematch.files import write_private
from facematch.models.dlib_format import (
    IR_VERSION,
    LONG_BYTES,
    OPSET,
    AddPrevLayer,
    AffineLayer,
    ConvLayer,
    FcLayer,
    FormatError,
    IdentityLayer,
    InputLayer,
    LayerSpec,
    PoolLayer,
    Reader,
    ReluLayer,
    SkipLayer,
    TagLayer,
    check_read,
    expect_name,
    read_add_prev,
    read_affine,
    read_conv,
    read_fc,
    read_header,
    read_layer_state,
    read_pool,
    read_relu,
)

if TYPE_CHECKING:
    import onnx

CONVERTER_VERSION = "1"
"""Bump whenever the generated model could compute anything differently."""


CHIP_SIZE = 150
DESCRIPTOR_SIZE = 128
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"


# --------------------------------------------------------------------------------------
# Reading dlib's serialization format


# --------------------------------------------------------------------------------------
# The network we expect, as in face_recognition.cpp's anet_type


def _block(filters: int, stride: int) -> list[LayerSpec]:
    """block<N,affine,stride>: con, affine, relu, con, affine."""
    return [
        LayerSpec("con", outputs=filters, window=3, stride=stride),
        LayerSpec("affine"),
        LayerSpec("relu"),
        LayerSpec("con", outputs=filters, window=3, stride=1),
        LayerSpec("affine"),
    ]


def _ares(filters: int) -> list[LayerSpec]:
    """relu<add_prev1<block<tag1<...>>>>: a residual unit keeping the size."""
    return [
        LayerSpec("tag", tag=1),
        *_block(filters, 1),
        LayerSpec("add_prev", tag=1),
        LayerSpec("relu"),
    ]


def _ares_down(filters: int) -> list[LayerSpec]:
    """relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<tag1<...>>>>>>>: halves the size.

    The shortcut is a 2x2 average pool of the unit's input, with no 1x1 projection:
    dlib's add_prev zero-fills the missing channels instead.
    """
    return [
        LayerSpec("tag", tag=1),
        *_block(filters, 2),
        LayerSpec("tag", tag=2),
        LayerSpec("skip", tag=1),
        LayerSpec("avg_pool", window=2, stride=2),
        LayerSpec("add_prev", tag=2),
        LayerSpec("relu"),
    ]


def expected_layers() -> list[LayerSpec]:
    """anet_type from the input layer up to the fc layer (the loss layer is separate)."""
    return [
        LayerSpec("input"),
        LayerSpec("con", outputs=32, window=7, stride=2),
        LayerSpec("affine"),
        LayerSpec("relu"),
        LayerSpec("max_pool", window=3, stride=2),
        *_ares(32) * 3,
        *_ares_down(64),
        *_ares(64) * 3,
        *_ares_down(128),
        *_ares(128) * 2,
        *_ares_down(256),
        *_ares(256) * 2,
        *_ares_down(256),
        LayerSpec("avg_pool", window=0, stride=1),
        LayerSpec("fc", outputs=DESCRIPTOR_SIZE),
    ]


# --------------------------------------------------------------------------------------
# What each layer holds once read


Layer = (
    ConvLayer
    | AffineLayer
    | ReluLayer
    | IdentityLayer
    | PoolLayer
    | TagLayer
    | SkipLayer
    | AddPrevLayer
    | FcLayer
)


@dataclass(frozen=True)
class Network:
    """A parsed .dat: the input scaling, then the layers from the first con up to the fc."""

    input: InputLayer
    layers: list[Layer]


# --------------------------------------------------------------------------------------
# Reading each layer's parameters (layers.h, input.h, loss.h)


def _read_loss(reader: Reader) -> None:
    """loss_metric_ holds only training margins; its output is the fc output as is."""
    reader.version("add_loss_layer", range(1, 2))
    name = expect_name(reader, ("loss_metric_", "loss_metric_2"), LayerSpec("loss_metric"))
    if name == "loss_metric_2":
        reader.real()  # margin
        reader.real()  # distance threshold


_DETAIL_READERS: dict[str, Callable[[Reader, LayerSpec], Layer]] = {
    "con": read_conv,
    "affine": read_affine,
    "relu": read_relu,
    "max_pool": read_pool,
    "avg_pool": read_pool,
    "add_prev": read_add_prev,
    "fc": read_fc,
}


def read_input(reader: Reader, spec: LayerSpec) -> InputLayer:
    expect_name(reader, ("input_rgb_image_sized",), spec)
    means = np.array([reader.real() for _ in range(3)], dtype=np.float32)
    start = reader.offset
    rows = reader.integer(LONG_BYTES, signed=False)
    cols = reader.integer(LONG_BYTES, signed=False)
    check_read(reader, (rows, cols) == (CHIP_SIZE, CHIP_SIZE), f"input size {rows}x{cols}", start)
    check_read(reader, bool(np.all(np.isfinite(means))), "non-finite input means", start)
    return InputLayer(means)


def read_network(data: bytes) -> Network:
    """Parse a .dat holding anet_type, checking each layer against expected_layers().

    Raises FormatError if the bytes are not exactly that network.
    """
    reader = Reader(data)
    specs = expected_layers()
    _read_loss(reader)
    # Headers come outermost first: fc down to the layer right above the first con.
    versions = [read_header(reader, spec) for spec in reversed(specs[2:])][::-1]
    # The first con sits on the input layer, in add_layer's input-layer flavour.
    first_version = reader.version("first con layer", range(2, 4))
    input_layer = read_input(reader, specs[0])
    layers: list[Layer] = [read_conv(reader, specs[1])]
    read_layer_state(reader, first_version, on_input=True)
    for spec, version in zip(specs[2:], versions, strict=True):
        if spec.kind == "tag":
            layers.append(TagLayer(spec.tag))
        elif spec.kind == "skip":
            layers.append(SkipLayer(spec.tag))
        else:
            layers.append(_DETAIL_READERS[spec.kind](reader, spec))
            read_layer_state(reader, version, on_input=False)
    reader.expect_end()
    return Network(input_layer, layers)


# --------------------------------------------------------------------------------------
# Building the ONNX graph


class _Tensor(NamedTuple):
    """A value in the graph being built, with its static NCHW size (batch aside)."""

    name: str
    channels: int
    rows: int
    cols: int


class _GraphBuilder:
    """Accumulates nodes and initializers, inferring shapes to validate the weights."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self._helper = helper
        self._numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: dict[str, int] = {}

    def _name(self, hint: str) -> str:
        self._names[hint] = self._names.get(hint, 0) + 1
        return f"{hint}_{self._names[hint]}"

    def constant(self, hint: str, value: npt.NDArray[Any]) -> str:
        name = self._name(hint)
        self.initializers.append(self._numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attributes: Any) -> str:
        output = self._name(op.lower())
        self.nodes.append(self._helper.make_node(op, inputs, [output], output, **attributes))
        return output

    def input_stage(self, layer: InputLayer) -> _Tensor:
        """uint8 NHWC chips -> dlib's float NCHW input: (pixel - mean) / 256."""
        from onnx import TensorProto

        pixels = self.node("Cast", [INPUT_NAME], to=TensorProto.FLOAT)
        centred = self.node("Sub", [pixels, self.constant("channel_means", layer.means)])
        scaled = self.node(
            "Div", [centred, self.constant("scale", np.array(256.0, dtype=np.float32))]
        )
        nchw = self.node("Transpose", [scaled], perm=[0, 3, 1, 2])
        return _Tensor(nchw, 3, CHIP_SIZE, CHIP_SIZE)

    def conv(self, x: _Tensor, layer: ConvLayer) -> _Tensor:
        filters, channels, rows, cols = layer.weights.shape
        if channels != x.channels:
            raise FormatError(f"a con layer expects {channels} channels but gets {x.channels}")
        inputs = [x.name, self.constant("conv_weights", layer.weights)]
        if layer.bias is not None:
            inputs.append(self.constant("conv_bias", layer.bias))
        pad = layer.padding
        out = self.node(
            "Conv",
            inputs,
            kernel_shape=[rows, cols],
            strides=[layer.stride, layer.stride],
            pads=[pad, pad, pad, pad],
        )
        if layer.relu:
            out = self.node("Relu", [out])
        return _Tensor(
            out,
            filters,
            _output_size(x.rows, rows, layer.stride, pad),
            _output_size(x.cols, cols, layer.stride, pad),
        )

    def affine(self, x: _Tensor, layer: AffineLayer) -> _Tensor:
        """Per-channel scale and shift, as dlib computes it (not folded into the conv)."""
        if layer.gamma.size != x.channels:
            raise FormatError(f"an affine layer has {layer.gamma.size} channels, not {x.channels}")
        shape = (x.channels, 1, 1)
        scaled = self.node("Mul", [x.name, self.constant("gamma", layer.gamma.reshape(shape))])
        shifted = self.node("Add", [scaled, self.constant("beta", layer.beta.reshape(shape))])
        return x._replace(name=shifted)

    def pool(self, x: _Tensor, layer: PoolLayer) -> _Tensor:
        if layer.window == 0:
            return _Tensor(self.node("GlobalAveragePool", [x.name]), x.channels, 1, 1)
        op = "AveragePool" if layer.average else "MaxPool"
        out = self.node(
            op,
            [x.name],
            kernel_shape=[layer.window, layer.window],
            strides=[layer.stride, layer.stride],
        )
        rows = _output_size(x.rows, layer.window, layer.stride, 0)
        cols = _output_size(x.cols, layer.window, layer.stride, 0)
        return _Tensor(out, x.channels, rows, cols)

    def add_zero_filled(self, a: _Tensor, b: _Tensor) -> _Tensor:
        """dlib's add_prev: the sum takes the larger of each dimension, and each operand
        is zero-filled at the end of every dimension it lacks (tt::add in cpu_dlib.cpp).

        In this network that happens in every downsampling unit (the shortcut has
        half the channels) and once spatially (a 3x3 block output meets a 4x4 shortcut).
        """
        channels = max(a.channels, b.channels)
        rows = max(a.rows, b.rows)
        cols = max(a.cols, b.cols)
        operands = [self._zero_fill(x, channels, rows, cols) for x in (a, b)]
        return _Tensor(self.node("Add", operands), channels, rows, cols)

    def _zero_fill(self, x: _Tensor, channels: int, rows: int, cols: int) -> str:
        if (x.channels, x.rows, x.cols) == (channels, rows, cols):
            return x.name
        # Pad takes the begin pads for N, C, H, W, then the end pads.
        end_pads = [channels - x.channels, rows - x.rows, cols - x.cols]
        pads = np.array([0, 0, 0, 0, 0, *end_pads], dtype=np.int64)
        return self.node("Pad", [x.name, self.constant("pads", pads)])

    def fc(self, x: _Tensor, layer: FcLayer) -> str:
        inputs, _ = layer.weights.shape
        if inputs != x.channels * x.rows * x.cols:
            raise FormatError(
                f"the fc layer expects {inputs} inputs, not {x.channels * x.rows * x.cols}"
            )
        flat = self.node("Flatten", [x.name], axis=1)
        return self.node("MatMul", [flat, self.constant("fc_weights", layer.weights)])


def _output_size(size: int, window: int, stride: int, padding: int) -> int:
    """Output side of dlib's convolutions and pools (rounded down, like ONNX's)."""
    if window > size + 2 * padding:
        raise FormatError(f"a {window}-wide window does not fit a {size}-wide input")
    return 1 + (size + 2 * padding - window) // stride


def _build_graph(network: Network) -> onnx.GraphProto:
    """Lay the layers out as ONNX nodes, resolving tag/skip/add_prev as dlib does.

    dlib resolves ``layer<tagN>`` by walking down from the current layer to the
    nearest tagN, i.e. the most recent tagN seen going up, hence the dict.
    """
    from onnx import TensorProto, helper

    *body, head = network.layers
    if not isinstance(head, FcLayer):
        raise FormatError("the network does not end with an fc layer")
    builder = _GraphBuilder()
    x = builder.input_stage(network.input)
    tagged: dict[int, _Tensor] = {}
    for layer in body:
        match layer:
            case ConvLayer():
                x = builder.conv(x, layer)
            case AffineLayer():
                x = builder.affine(x, layer)
            case ReluLayer():
                x = x._replace(name=builder.node("Relu", [x.name]))
            case IdentityLayer():
                pass
            case PoolLayer():
                x = builder.pool(x, layer)
            case TagLayer(tag=tag):
                tagged[tag] = x
            case SkipLayer(tag=tag):
                x = tagged[tag]
            case AddPrevLayer(tag=tag):
                x = builder.add_zero_filled(x, tagged[tag])
            case FcLayer():
                raise FormatError("an fc layer inside the network")
    # loss_metric_ hands the fc output over as is: no normalisation.
    descriptors = builder.fc(x, head)
    builder.nodes.append(helper.make_node("Identity", [descriptors], [OUTPUT_NAME]))

    chips = helper.make_tensor_value_info(
        INPUT_NAME, TensorProto.UINT8, ["batch", CHIP_SIZE, CHIP_SIZE, 3]
    )
    output = helper.make_tensor_value_info(
        OUTPUT_NAME, TensorProto.FLOAT, ["batch", DESCRIPTOR_SIZE]
    )
    return helper.make_graph(
        builder.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [chips],
        [output],
        initializer=builder.initializers,
    )


# --------------------------------------------------------------------------------------
# Public API


def build_model(dat_path: Path) -> onnx.ModelProto:
    """Read dlib's .dat and return the equivalent ONNX model.

    Raises ModelError if the file cannot be read or is not dlib's face recognition
    ResNet (truncated, another model, random bytes...).
    """
    from onnx import checker, helper

    try:
        data = Path(dat_path).read_bytes()
    except OSError as err:
        raise ModelError(f"cannot read {dat_path}: {err.strerror or err}") from err
    if not data:
        raise ModelError(f"{dat_path} is empty, not dlib's face recognition model")
    try:
        graph = _build_graph(read_network(data))
    except FormatError as err:
        where = "" if err.offset is None else f" (at byte {err.offset} of {len(data)})"
        raise ModelError(
            f"{dat_path} is not dlib's face recognition ResNet: {err.reason}{where}"
        ) from None

    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="facematch.models.resnet_onnx",
        producer_version=CONVERTER_VERSION,
        doc_string=f"dlib's face recognition ResNet converted from {Path(dat_path).name}",
    )
    model.ir_version = IR_VERSION
    checker.check_model(model)
    return model


def convert(dat_path: Path, onnx_path: Path) -> None:
    """Convert ``dat_path`` and write the model to ``onnx_path`` atomically, readable by us alone.

    The model goes to a temporary file in the destination folder first and is then
    renamed over ``onnx_path``, so readers never see a half-written model, two
    processes converting at once both leave a complete file, and a link planted
    at ``onnx_path`` is replaced rather than written through.
    """
    write_private(Path(onnx_path), build_model(dat_path).SerializeToString())
