"""dlib's serialization format: the reader and layer records both ONNX conversions share.

See ``resnet_onnx`` for the format as dlib 20.0 writes it (integers, floats, tensors,
layers from the loss layer down); ``mmod`` reads its detector with the same pieces.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

OPSET = 17
"""ONNX Runtime has supported opset 17 since 1.14."""

IR_VERSION = 8
"""The IR version of opset 17; newer ones stop older ONNX Runtimes loading the file."""

FloatArray = npt.NDArray[np.float32]

# Sizes in bytes of the C++ types dlib serializes (LP64: long is 8 bytes). An integer
# whose control byte announces more bytes than its type holds is rejected, as dlib does.
INT_BYTES = 4

UINT_BYTES = 4

LONG_BYTES = 8

INT16_BYTES = 2

MAX_VERSION_STRING = 64
"""dlib's version strings are short tags like "con_4"; a longer one means a foreign file."""


class FormatError(Exception):
    """The file is not the network we expect; ``offset`` says where, when known."""

    def __init__(self, reason: str, offset: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


class Reader:
    """A cursor over the .dat bytes with one method per dlib serialized type."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.offset = 0

    def fail(self, reason: str, offset: int | None = None) -> FormatError:
        """An error pointing at ``offset`` (default: the current position)."""
        return FormatError(reason, self.offset if offset is None else offset)

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
        found = self.integer(INT_BYTES)
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
        mantissa = self.integer(LONG_BYTES)
        exponent = self.integer(INT16_BYTES)
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
        length = self.integer(LONG_BYTES, signed=False)
        if length > MAX_VERSION_STRING:
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
        n, k, nr, nc = (self.integer(LONG_BYTES) for _ in range(4))
        if min(n, k, nr, nc) < 0:
            raise self.fail(f"negative tensor size {(n, k, nr, nc)}", start)
        return n, k, nr, nc


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


def expect_name(reader: Reader, accepted: tuple[str, ...], spec: LayerSpec) -> str:
    """Read a layer's version string; a different layer type here means a different net."""
    start = reader.offset
    name = reader.version_string()
    if name not in accepted:
        raise reader.fail(
            f"expected a {spec.kind} layer ({'/'.join(accepted)}), found {name!r}", start
        )
    return name


def check_read(reader: Reader, ok: bool, what: str, start: int) -> None:
    if not ok:
        raise reader.fail(what, start)


def default_padding(spec: LayerSpec) -> int:
    """The padding template default of con_, max_pool_ and avg_pool_:
    ``_stride != 1 ? 0 : _nr/2``, i.e. "same" padding only for stride 1."""
    return spec.window // 2 if spec.stride == 1 else 0


def skip_learning_rates(reader: Reader) -> None:
    """Learning-rate and weight-decay multipliers (4 doubles): training only."""
    for _ in range(4):
        reader.real()


def read_conv(reader: Reader, spec: LayerSpec) -> ConvLayer:
    name = expect_name(reader, ("con_4", "con_5", "con_6"), spec)
    params = reader.tensor().ravel()
    start = reader.offset
    filters = reader.integer(LONG_BYTES)
    rows, cols = reader.integer(LONG_BYTES), reader.integer(LONG_BYTES)
    stride_y, stride_x = reader.integer(INT_BYTES), reader.integer(INT_BYTES)
    pad_y, pad_x = reader.integer(INT_BYTES), reader.integer(INT_BYTES)
    padding = default_padding(spec)
    found = (filters, rows, cols, stride_y, stride_x, pad_y, pad_x)
    wanted = (spec.outputs, spec.window, spec.window, spec.stride, spec.stride, padding, padding)
    check_read(reader, found == wanted, f"con layer {found}, expected {wanted}", start)
    start = reader.offset
    filter_dims = reader.alias_tensor()
    bias_dims = reader.alias_tensor()
    skip_learning_rates(reader)
    use_bias = reader.boolean() if name in ("con_5", "con_6") else True
    use_relu = reader.boolean() if name == "con_6" else False

    weight_count = math.prod(filter_dims)
    bias_count = filters if use_bias else 0
    check_read(
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


def read_affine(reader: Reader, spec: LayerSpec) -> AffineLayer | IdentityLayer:
    name = expect_name(reader, ("affine_", "affine_2"), spec)
    params = reader.tensor().ravel()
    start = reader.offset
    gamma_dims = reader.alias_tensor()
    beta_dims = reader.alias_tensor()
    mode = reader.integer(INT_BYTES)
    disabled = reader.boolean() if name == "affine_2" else False
    if disabled:
        return IdentityLayer()
    channels = gamma_dims[1]
    check_read(
        reader,
        mode == 0  # CONV_MODE: one gamma/beta per channel
        and gamma_dims == beta_dims == (1, channels, 1, 1)
        and params.size == 2 * channels,
        f"affine layer mode {mode} with gamma {gamma_dims} and {params.size} parameters",
        start,
    )
    return AffineLayer(gamma=params[:channels], beta=params[channels:])


def read_relu(reader: Reader, spec: LayerSpec) -> ReluLayer | IdentityLayer:
    name = expect_name(reader, ("relu_", "relu_2"), spec)
    disabled = reader.boolean() if name == "relu_2" else False
    return IdentityLayer() if disabled else ReluLayer()


def read_pool(reader: Reader, spec: LayerSpec) -> PoolLayer:
    average = spec.kind == "avg_pool"
    expect_name(reader, ("avg_pool_2",) if average else ("max_pool_2",), spec)
    start = reader.offset
    rows, cols = reader.integer(LONG_BYTES), reader.integer(LONG_BYTES)
    stride_y, stride_x = reader.integer(INT_BYTES), reader.integer(INT_BYTES)
    pad_y, pad_x = reader.integer(INT_BYTES), reader.integer(INT_BYTES)
    found = (rows, cols, stride_y, stride_x, pad_y, pad_x)
    padding = default_padding(spec)
    wanted = (spec.window, spec.window, spec.stride, spec.stride, padding, padding)
    check_read(reader, found == wanted, f"{spec.kind} layer {found}, expected {wanted}", start)
    return PoolLayer(average=average, window=spec.window, stride=spec.stride)


def read_add_prev(reader: Reader, spec: LayerSpec) -> AddPrevLayer:
    expect_name(reader, ("add_prev_",), spec)
    return AddPrevLayer(spec.tag)


def read_fc(reader: Reader, spec: LayerSpec) -> FcLayer:
    name = expect_name(reader, ("fc_2", "fc_3"), spec)
    start = reader.offset
    outputs = reader.integer(LONG_BYTES, signed=False)
    inputs = reader.integer(LONG_BYTES, signed=False)
    params = reader.tensor().ravel()
    weight_dims = reader.alias_tensor()
    reader.alias_tensor()  # biases: unused without a bias
    bias_mode = reader.integer(INT_BYTES)
    skip_learning_rates(reader)
    if name == "fc_3":
        reader.boolean()  # use_bias: only meaningful when bias_mode is FC_HAS_BIAS
    check_read(
        reader,
        outputs == spec.outputs
        and bias_mode == 1  # FC_NO_BIAS, as in fc_no_bias<128>
        and weight_dims == (inputs, outputs, 1, 1)
        and params.size == inputs * outputs,
        f"fc layer with {inputs} inputs, {outputs} outputs, bias mode {bias_mode}",
        start,
    )
    return FcLayer(params.reshape(inputs, outputs))


def read_header(reader: Reader, spec: LayerSpec) -> int:
    """The version that opens each wrapper: add_layer 1-2, add_tag_layer / add_skip_layer 1."""
    if spec.kind in ("tag", "skip"):
        return reader.version(f"{spec.kind} layer", range(1, 2))
    return reader.version(f"{spec.kind} layer", range(1, 3))


def read_layer_state(reader: Reader, version: int, on_input: bool) -> None:
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
        reader.integer(UINT_BYTES, signed=False)
