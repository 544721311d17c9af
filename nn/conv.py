"""Convolution layers: `Conv1d`, `Conv2d`, `ConvTranspose2d`, as torch.nn's."""

from __future__ import annotations

import ember as em

from .linear import reset_weight_and_bias
from .module import Module
from .parameter import Parameter
from .spatial import conv1d, conv2d, conv_transpose2d, pad

__all__ = ["Conv1d", "Conv2d", "ConvTranspose2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(value, n: int) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value,) * n


class _ConvNd(Module):
    """What the convolution layers share: arguments, parameters, initialisation, repr."""

    def __init__(self, n: int, in_channels: int, out_channels: int, kernel_size, stride,
                 padding, dilation, transposed: bool, output_padding, groups: int, bias: bool,
                 padding_mode: str, device=None, dtype=None) -> None:
        super().__init__()
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        kernel_size, stride, dilation = (_ntuple(v, n) for v in (kernel_size, stride, dilation))
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of "
                                 "{'valid', 'same'}")
            if padding == "same" and any(s != 1 for s in stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
        else:
            padding = _ntuple(padding, n)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {set(_PADDING_MODES)}, but got "
                             f"padding_mode={padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.transposed = dilation, transposed
        self.output_padding, self.groups = _ntuple(output_padding, n), groups
        self.padding_mode = padding_mode
        self._reversed_padding_repeated_twice = _reversed_padding(padding, kernel_size,
                                                                  dilation)
        shape = ((in_channels, out_channels // groups) if transposed
                 else (out_channels, in_channels // groups)) + kernel_size
        factory = {"device": device, "dtype": dtype}
        self.weight = Parameter(em.empty(shape, **factory))
        if bias:
            self.bias = Parameter(em.empty(out_channels, **factory))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weight and bias again from their initial distributions (torch's)."""
        reset_weight_and_bias(self.weight, self.bias)

    def extra_repr(self) -> str:
        n = len(self.kernel_size)
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, " \
            f"stride={self.stride}"
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


def _reversed_padding(padding, kernel_size, dilation) -> list:
    """The (left, right) amounts per dim, last dim first, as F.pad takes them."""
    out: list = []
    for i in reversed(range(len(kernel_size))):
        if padding == "valid":
            out += [0, 0]
        elif padding == "same":
            total = dilation[i] * (kernel_size[i] - 1)
            out += [total // 2, total - total // 2]
        else:
            out += [padding[i], padding[i]]
    return out


class _Conv(_ConvNd):
    _fn = None

    def _conv_forward(self, input, weight, bias):
        if self.padding_mode != "zeros":
            input = pad(input, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return type(self)._fn(input, weight, bias, self.stride, 0, self.dilation,
                                  self.groups)
        return type(self)._fn(input, weight, bias, self.stride, self.padding, self.dilation,
                              self.groups)

    def forward(self, input):
        return self._conv_forward(input, self.weight, self.bias)


class Conv1d(_Conv):
    """1-D convolution over an input of shape `(N, C_in, L)` or `(C_in, L)`.

    Args:
        in_channels (int): channels of the input.
        out_channels (int): channels of the output.
        kernel_size (int or tuple): the window size.
        stride (int or tuple): the step between windows. Default: 1.
        padding (int, tuple or str): zeros (or `padding_mode`) added to both sides;
            ``'valid'`` or ``'same'``. Default: 0.
        dilation (int or tuple): spacing between kernel elements. Default: 1.
        groups (int): independent channel groups. Default: 1.
        bias (bool): learn an additive bias. Default: True.
        padding_mode (str): ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.

    weight `(out_channels, in_channels / groups, kernel_size)` and bias start from
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as in torch.

    >>> m = nn.Conv1d(2, 4, 3, padding=1)
    >>> m(em.ones(5, 2, 7)).shape
    ember.Size([5, 4, 7])
    """

    _fn = staticmethod(conv1d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        super().__init__(1, in_channels, out_channels, kernel_size, stride, padding, dilation,
                         False, 0, groups, bias, padding_mode, device, dtype)


class Conv2d(_Conv):
    """2-D convolution over an input of shape `(N, C_in, H, W)` or `(C_in, H, W)`.

    Args:
        in_channels (int): channels of the input.
        out_channels (int): channels of the output.
        kernel_size (int or tuple): the window size.
        stride (int or tuple): the step between windows. Default: 1.
        padding (int, tuple or str): zeros (or `padding_mode`) added to both sides;
            ``'valid'`` or ``'same'``. Default: 0.
        dilation (int or tuple): spacing between kernel elements. Default: 1.
        groups (int): independent channel groups. Default: 1.
        bias (bool): learn an additive bias. Default: True.
        padding_mode (str): ``'zeros'``, ``'reflect'``, ``'replicate'`` or ``'circular'``.

    weight `(out_channels, in_channels / groups, kH, kW)` and bias start from
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as in torch.

    >>> m = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    >>> m
    Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))
    >>> m(em.ones(1, 3, 8, 8)).shape
    ember.Size([1, 8, 4, 4])
    """

    _fn = staticmethod(conv2d)

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros",
                 device=None, dtype=None) -> None:
        super().__init__(2, in_channels, out_channels, kernel_size, stride, padding, dilation,
                         False, 0, groups, bias, padding_mode, device, dtype)


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution over `(N, C_in, H, W)` or `(C_in, H, W)`.

    Args:
        in_channels (int): channels of the input.
        out_channels (int): channels of the output.
        kernel_size (int or tuple): the window size.
        stride (int or tuple): the stride of the convolution this one inverts. Default: 1.
        padding (int or tuple): `dilation * (kernel_size - 1) - padding` zeros are added
            to both sides of the input. Default: 0.
        output_padding (int or tuple): extra size on one side of the output. Default: 0.
        groups (int): independent channel groups. Default: 1.
        bias (bool): learn an additive bias. Default: True.
        dilation (int or tuple): spacing between kernel elements. Default: 1.

    weight `(in_channels, out_channels / groups, kH, kW)`. `forward(input, output_size)`
    may name the output size, which picks the output padding, as in torch.

    >>> m = nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
    >>> m(em.ones(1, 4, 5, 5)).shape
    ember.Size([1, 2, 10, 10])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros", device=None, dtype=None) -> None:
        if padding_mode != "zeros":
            raise ValueError('Only "zeros" padding mode is supported for ConvTranspose2d')
        super().__init__(2, in_channels, out_channels, kernel_size, stride, padding, dilation,
                         True, output_padding, groups, bias, padding_mode, device, dtype)

    def _output_padding(self, input, output_size) -> tuple:
        if output_size is None:
            return self.output_padding
        sizes = list(output_size)
        k = len(self.kernel_size)
        if len(sizes) == k + input.ndim - 2 or len(sizes) > k:
            sizes = sizes[-k:]
        if len(sizes) != k:
            raise ValueError(f"ConvTranspose{k}D: for {input.ndim}D input, output_size must have "
                             f"{k} or {k + input.ndim - 2} elements (got {len(output_size)})")
        smallest, largest = [], []
        for d in range(k):
            size = input.shape[input.ndim - k + d]
            smallest.append((size - 1) * self.stride[d] - 2 * self.padding[d] +
                            self.dilation[d] * (self.kernel_size[d] - 1) + 1)
            largest.append(smallest[d] + self.stride[d] - 1)
        for d in range(k):
            if not smallest[d] <= sizes[d] <= largest[d]:
                raise ValueError(f"requested an output size of {output_size}, but valid sizes "
                                 f"range from {smallest} to {largest} (for an input of "
                                 f"{em.Size(input.shape[2:])})")
        extra = [sizes[d] - smallest[d] for d in range(k)]
        return tuple(extra)

    def forward(self, input, output_size=None):
        extra = self._output_padding(input, output_size)
        return conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                extra, self.groups, self.dilation)
