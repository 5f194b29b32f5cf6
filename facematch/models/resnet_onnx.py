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

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from facematch.errors import ModelError
from facematch.files import write_private

if TYPE_CHECKING:
    import onnx

CONVERTER_VERSION = "1"
"""Bump whenever the generated model could compute anything differently."""

OPSET = 17
"""ONNX Runtime has supported opset 17 since 1.14."""

IR_VERSION = 8
"""The IR version of opset 17; newer ones stop older ONNX Runtimes loading the file."""

CHIP_SIZE = 150
DESCRIPTOR_SIZE = 128
INPUT_NAME = "chips"
OUTPUT_NAME = "descriptors"

FloatArray = npt.NDArray[np.float32]

# Sizes in bytes of the C++ types dlib serializes (LP64: long is 8 bytes). An integer
# whose control byte announces more bytes than its type holds is rejected, as dlib does.
_INT = 4
_UINT = 4
_LONG = 8
_INT16 = 2

_MAX_VERSION_STRING = 64
"""dlib's version strings are short tags like "con_4"; a longer one means a foreign file."""


class _FormatError(Exception):
    """The file is not the network we expect; ``offset`` says where, when known."""

    def __init__(self, reason: str, offset: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


# --------------------------------------------------------------------------------------
# Reading dlib's serialization format


class _Reader:
    """A cursor over the .dat bytes with one method per dlib serialized type."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.offset = 0

    def fail(self, reason: str, offset: int | None = None) -> _FormatError:
        """An error pointing at ``offset`` (default: the current position)."""
        return _FormatError(reason, self.offset if offset is None else offset)

    def take(self, count: int) -> memoryview:
        """The next ``count`` bytes; running out means the file was cut short."""
        if count > len(self._data) - self.offset:
            raise self.fail("the file is truncated", len(self._data))
        chunk = self._data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def expect_end(self) -> None:
        """dlib would ignore trailing bytes, but in a model file they mean it is not ours."""
        extra = len(self._data) - self.offset
        if extra:
            raise self.fail(f"{extra} unexpected bytes after the network")

    def integer(self, size_limit: int, signed: bool = True) -> int:
        """serialize.h ``unpack_int``: control byte, then little-endian magnitude bytes."""
        start = self.offset
        control = self.take(1)[0]
        # Signed ints keep the sign in bit 7; unsigned ones treat bit 7 as part of the
        # size, so a "negative" unsigned value is rejected as too long, as in dlib.
        size = control & 0x0F if signed else control & 0x8F
        if size == 0 or size > size_limit:
            raise self.fail(f"invalid integer control byte 0x{control:02x}", start)
        magnitude = int.from_bytes(self.take(size), "little")
        return -magnitude if signed and control & 0x80 else magnitude

    def version(self, what: str, accepted: range) -> int:
        """A layer's integer version number, which must be one we know how to read."""
        start = self.offset
        found = self.integer(_INT)
        if found not in accepted:
            raise self.fail(f"{what}: unsupported version {found}", start)
        return found

    def boolean(self) -> bool:
        """Bools are stored as the ASCII characters '0' and '1'."""
        start = self.offset
        char = self.take(1)[0]
        if char not in b"01":
            raise self.fail(f"invalid bool byte 0x{char:02x}", start)
        return char == ord("1")

    def real(self) -> float:
        """A scalar float or double in dlib's portable ``float_details`` format."""
        start = self.offset
        if self.take(1)[0] & 0x70:
            raise self.fail("a float in dlib's old text format", start)
        self.offset = start
        mantissa = self.integer(_LONG)
        exponent = self.integer(_INT16)
        special = {32000: math.inf, 32001: -math.inf, 32002: math.nan}
        if exponent in special:
            return special[exponent]
        try:
            return math.ldexp(float(mantissa), exponent)
        except OverflowError:
            raise self.fail("floating point value out of range", start) from None

    def version_string(self) -> str:
        """The short ASCII tag (e.g. "con_4") that starts every layer's parameters."""
        start = self.offset
        length = self.integer(_LONG, signed=False)
        if length > _MAX_VERSION_STRING:
            raise self.fail(f"expected a layer name, found a {length}-byte string", start)
        name = bytes(self.take(length)).decode("latin-1")
        if not (name.isascii() and name.isprintable()):
            raise self.fail("expected a layer name, found binary data", start)
        return name

    def tensor(self) -> FloatArray:
        """A ``resizable_tensor``: version 2, dims (n, k, nr, nc), raw float32 data."""
        self.version("tensor", range(2, 3))
        dims = self._dims()
        count = math.prod(dims)
        data = np.frombuffer(self.take(4 * count), dtype="<f4")
        return data.astype(np.float32).reshape(dims)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        """An ``alias_tensor``: version 1 and dims only (a view into a layer's params)."""
        self.version("alias_tensor", range(1, 2))
        return self._dims()

    def _dims(self) -> tuple[int, int, int, int]:
        start = self.offset
        n, k, nr, nc = (self.integer(_LONG) for _ in range(4))
        if min(n, k, nr, nc) < 0:
            raise self.fail(f"negative tensor size {(n, k, nr, nc)}", start)
        return n, k, nr, nc


# --------------------------------------------------------------------------------------
# The network we expect, as in face_recognition.cpp's anet_type


@dataclass(frozen=True)
class LayerSpec:
    """One layer of anet_type, listed from the input up.

    ``outputs`` is the filter count of a con layer or the width of the fc layer;
    ``window`` the side of a con or pool window (0: the pool covers its whole input);
    ``tag`` the id of a tag, skip or add_prev layer.
    """

    kind: str
    outputs: int = 0
    window: int = 0
    stride: int = 1
    tag: int = 0


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


@dataclass(frozen=True)
class InputLayer:
    """input_rgb_image_sized: per-channel means subtracted before dividing by 256."""

    means: FloatArray  # red, green, blue


@dataclass(frozen=True)
class ConvLayer:
    """con_: cross-correlation with symmetric zero padding, like ONNX Conv."""

    weights: FloatArray  # (filters, channels, rows, cols)
    bias: FloatArray | None
    stride: int
    padding: int
    relu: bool  # con_6 can fuse a relu after the bias


@dataclass(frozen=True)
class AffineLayer:
    """affine_ in CONV_MODE: out = gamma[c] * in + beta[c] (batch norm frozen for inference)."""

    gamma: FloatArray
    beta: FloatArray


@dataclass(frozen=True)
class ReluLayer:
    """relu_."""


@dataclass(frozen=True)
class IdentityLayer:
    """A disabled relu_ or affine_: dlib computes these in place and skips them."""


@dataclass(frozen=True)
class PoolLayer:
    """max_pool_ / avg_pool_; window 0 pools the whole input (avg_pool_everything)."""

    average: bool
    window: int
    stride: int


@dataclass(frozen=True)
class TagLayer:
    """tagN: marks its input for a later skip or add_prev."""

    tag: int


@dataclass(frozen=True)
class SkipLayer:
    """skipN: continues from the output of the nearest tagN below."""

    tag: int


@dataclass(frozen=True)
class AddPrevLayer:
    """add_prevN: adds the nearest tagN below, zero-filling the smaller tensor."""

    tag: int


@dataclass(frozen=True)
class FcLayer:
    """fc_ without bias: out = flatten(in) @ weights."""

    weights: FloatArray  # (inputs, outputs)


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


def _expect_name(reader: _Reader, accepted: tuple[str, ...], spec: LayerSpec) -> str:
    """Read a layer's version string; a different layer type here means a different net."""
    start = reader.offset
    name = reader.version_string()
    if name not in accepted:
        raise reader.fail(
            f"expected a {spec.kind} layer ({'/'.join(accepted)}), found {name!r}", start
        )
    return name


def _check(reader: _Reader, ok: bool, what: str, start: int) -> None:
    if not ok:
        raise reader.fail(what, start)


def _default_padding(spec: LayerSpec) -> int:
    """The padding template default of con_, max_pool_ and avg_pool_:
    ``_stride != 1 ? 0 : _nr/2``, i.e. "same" padding only for stride 1."""
    return spec.window // 2 if spec.stride == 1 else 0


def _skip_learning_rates(reader: _Reader) -> None:
    """Learning-rate and weight-decay multipliers (4 doubles): training only."""
    for _ in range(4):
        reader.real()


def _read_input(reader: _Reader, spec: LayerSpec) -> InputLayer:
    _expect_name(reader, ("input_rgb_image_sized",), spec)
    means = np.array([reader.real() for _ in range(3)], dtype=np.float32)
    start = reader.offset
    rows = reader.integer(_LONG, signed=False)
    cols = reader.integer(_LONG, signed=False)
    _check(reader, (rows, cols) == (CHIP_SIZE, CHIP_SIZE), f"input size {rows}x{cols}", start)
    _check(reader, bool(np.all(np.isfinite(means))), "non-finite input means", start)
    return InputLayer(means)


def _read_conv(reader: _Reader, spec: LayerSpec) -> ConvLayer:
    name = _expect_name(reader, ("con_4", "con_5", "con_6"), spec)
    params = reader.tensor().ravel()
    start = reader.offset
    filters = reader.integer(_LONG)
    rows, cols = reader.integer(_LONG), reader.integer(_LONG)
    stride_y, stride_x = reader.integer(_INT), reader.integer(_INT)
    pad_y, pad_x = reader.integer(_INT), reader.integer(_INT)
    padding = _default_padding(spec)
    found = (filters, rows, cols, stride_y, stride_x, pad_y, pad_x)
    wanted = (spec.outputs, spec.window, spec.window, spec.stride, spec.stride, padding, padding)
    _check(reader, found == wanted, f"con layer {found}, expected {wanted}", start)
    start = reader.offset
    filter_dims = reader.alias_tensor()
    bias_dims = reader.alias_tensor()
    _skip_learning_rates(reader)
    use_bias = reader.boolean() if name in ("con_5", "con_6") else True
    use_relu = reader.boolean() if name == "con_6" else False

    weight_count = math.prod(filter_dims)
    bias_count = filters if use_bias else 0
    _check(
        reader,
        filter_dims[0] == filters
        and filter_dims[2:] == (rows, cols)
        and params.size == weight_count + bias_count
        and (not use_bias or bias_dims == (1, filters, 1, 1)),
        f"con parameters of size {params.size} do not fit filters {filter_dims}",
        start,
    )
    return ConvLayer(
        weights=params[:weight_count].reshape(filter_dims),
        bias=params[weight_count:] if use_bias else None,
        stride=stride_y,
        padding=pad_y,
        # dlib's con_ only applies its fused relu together with the bias.
        relu=use_bias and use_relu,
    )


def _read_affine(reader: _Reader, spec: LayerSpec) -> AffineLayer | IdentityLayer:
    name = _expect_name(reader, ("affine_", "affine_2"), spec)
    params = reader.tensor().ravel()
    start = reader.offset
    gamma_dims = reader.alias_tensor()
    beta_dims = reader.alias_tensor()
    mode = reader.integer(_INT)
    disabled = reader.boolean() if name == "affine_2" else False
    if disabled:
        return IdentityLayer()
    channels = gamma_dims[1]
    _check(
        reader,
        mode == 0  # CONV_MODE: one gamma/beta per channel
        and gamma_dims == beta_dims == (1, channels, 1, 1)
        and params.size == 2 * channels,
        f"affine layer mode {mode} with gamma {gamma_dims} and {params.size} parameters",
        start,
    )
    return AffineLayer(gamma=params[:channels], beta=params[channels:])


def _read_relu(reader: _Reader, spec: LayerSpec) -> ReluLayer | IdentityLayer:
    name = _expect_name(reader, ("relu_", "relu_2"), spec)
    disabled = reader.boolean() if name == "relu_2" else False
    return IdentityLayer() if disabled else ReluLayer()


def _read_pool(reader: _Reader, spec: LayerSpec) -> PoolLayer:
    average = spec.kind == "avg_pool"
    _expect_name(reader, ("avg_pool_2",) if average else ("max_pool_2",), spec)
    start = reader.offset
    rows, cols = reader.integer(_LONG), reader.integer(_LONG)
    stride_y, stride_x = reader.integer(_INT), reader.integer(_INT)
    pad_y, pad_x = reader.integer(_INT), reader.integer(_INT)
    found = (rows, cols, stride_y, stride_x, pad_y, pad_x)
    padding = _default_padding(spec)
    wanted = (spec.window, spec.window, spec.stride, spec.stride, padding, padding)
    _check(reader, found == wanted, f"{spec.kind} layer {found}, expected {wanted}", start)
    return PoolLayer(average=average, window=spec.window, stride=spec.stride)


def _read_add_prev(reader: _Reader, spec: LayerSpec) -> AddPrevLayer:
    _expect_name(reader, ("add_prev_",), spec)
    return AddPrevLayer(spec.tag)


def _read_fc(reader: _Reader, spec: LayerSpec) -> FcLayer:
    name = _expect_name(reader, ("fc_2", "fc_3"), spec)
    start = reader.offset
    outputs = reader.integer(_LONG, signed=False)
    inputs = reader.integer(_LONG, signed=False)
    params = reader.tensor().ravel()
    weight_dims = reader.alias_tensor()
    reader.alias_tensor()  # biases: unused without a bias
    bias_mode = reader.integer(_INT)
    _skip_learning_rates(reader)
    if name == "fc_3":
        reader.boolean()  # use_bias: only meaningful when bias_mode is FC_HAS_BIAS
    _check(
        reader,
        outputs == spec.outputs
        and bias_mode == 1  # FC_NO_BIAS, as in fc_no_bias<128>
        and weight_dims == (inputs, outputs, 1, 1)
        and params.size == inputs * outputs,
        f"fc layer with {inputs} inputs, {outputs} outputs, bias mode {bias_mode}",
        start,
    )
    return FcLayer(params.reshape(inputs, outputs))


def _read_loss(reader: _Reader) -> None:
    """loss_metric_ holds only training margins; its output is the fc output as is."""
    reader.version("add_loss_layer", range(1, 2))
    name = _expect_name(reader, ("loss_metric_", "loss_metric_2"), LayerSpec("loss_metric"))
    if name == "loss_metric_2":
        reader.real()  # margin
        reader.real()  # distance threshold


_DETAIL_READERS: dict[str, Callable[[_Reader, LayerSpec], Layer]] = {
    "con": _read_conv,
    "affine": _read_affine,
    "relu": _read_relu,
    "max_pool": _read_pool,
    "avg_pool": _read_pool,
    "add_prev": _read_add_prev,
    "fc": _read_fc,
}


def _read_header(reader: _Reader, spec: LayerSpec) -> int:
    """The version that opens each wrapper: add_layer 1-2, add_tag_layer / add_skip_layer 1."""
    if spec.kind in ("tag", "skip"):
        return reader.version(f"{spec.kind} layer", range(1, 2))
    return reader.version(f"{spec.kind} layer", range(1, 3))


def _read_layer_state(reader: _Reader, version: int, on_input: bool) -> None:
    """add_layer's training state after the parameters: 3 bools, then scratch tensors.

    The add_layer sitting on the input layer stores x_grad, cached_output and
    grad_final, plus (version 3) the sample expansion factor; the others store
    x_grad, cached_output and (version 2) params_grad.
    """
    for _ in range(3):
        reader.boolean()
    reader.tensor()
    reader.tensor()
    if on_input or version >= 2:
        reader.tensor()
    if on_input and version >= 3:
        reader.integer(_UINT, signed=False)


def read_network(data: bytes) -> Network:
    """Parse a .dat holding anet_type, checking each layer against expected_layers().

    Raises _FormatError if the bytes are not exactly that network.
    """
    reader = _Reader(data)
    specs = expected_layers()
    _read_loss(reader)
    # Headers come outermost first: fc down to the layer right above the first con.
    versions = [_read_header(reader, spec) for spec in reversed(specs[2:])][::-1]
    # The first con sits on the input layer, in add_layer's input-layer flavour.
    first_version = reader.version("first con layer", range(2, 4))
    input_layer = _read_input(reader, specs[0])
    layers: list[Layer] = [_read_conv(reader, specs[1])]
    _read_layer_state(reader, first_version, on_input=True)
    for spec, version in zip(specs[2:], versions, strict=True):
        if spec.kind == "tag":
            layers.append(TagLayer(spec.tag))
        elif spec.kind == "skip":
            layers.append(SkipLayer(spec.tag))
        else:
            layers.append(_DETAIL_READERS[spec.kind](reader, spec))
            _read_layer_state(reader, version, on_input=False)
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
            raise _FormatError(f"a con layer expects {channels} channels but gets {x.channels}")
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
            raise _FormatError(f"an affine layer has {layer.gamma.size} channels, not {x.channels}")
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
            raise _FormatError(
                f"the fc layer expects {inputs} inputs, not {x.channels * x.rows * x.cols}"
            )
        flat = self.node("Flatten", [x.name], axis=1)
        return self.node("MatMul", [flat, self.constant("fc_weights", layer.weights)])


def _output_size(size: int, window: int, stride: int, padding: int) -> int:
    """Output side of dlib's convolutions and pools (rounded down, like ONNX's)."""
    if window > size + 2 * padding:
        raise _FormatError(f"a {window}-wide window does not fit a {size}-wide input")
    return 1 + (size + 2 * padding - window) // stride


def _build_graph(network: Network) -> onnx.GraphProto:
    """Lay the layers out as ONNX nodes, resolving tag/skip/add_prev as dlib does.

    dlib resolves ``layer<tagN>`` by walking down from the current layer to the
    nearest tagN, i.e. the most recent tagN seen going up, hence the dict.
    """
    from onnx import TensorProto, helper

    *body, head = network.layers
    if not isinstance(head, FcLayer):
        raise _FormatError("the network does not end with an fc layer")
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
                raise _FormatError("an fc layer inside the network")
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
    except _FormatError as err:
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
