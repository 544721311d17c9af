"""Pooling layers: `MaxPool2d`, `AvgPool2d`, `AdaptiveAvgPool2d`, as torch.nn's."""

from __future__ import annotations

from .module import Module
from .spatial import adaptive_avg_pool2d, avg_pool2d, max_pool2d

__all__ = ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"]


class MaxPool2d(Module):
    """2-D max pooling over `(N, C, H, W)` or `(C, H, W)` (see `nn.functional.max_pool2d`).

    Args:
        kernel_size (int or tuple): the window size.
        stride (int or tuple, optional): the step between windows. Default: `kernel_size`.
        padding (int or tuple): implicit `-inf` on both sides. Default: 0.
        dilation (int or tuple): spacing between window elements. Default: 1.
        return_indices (bool): also return the positions of the maxima. Default: False.
        ceil_mode (bool): round the output size up. Default: False.

    >>> nn.MaxPool2d(2)
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    >>> nn.MaxPool2d(2)(em.ones(1, 3, 8, 8)).shape
    ember.Size([1, 3, 4, 4])
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):
        return max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation,
                          ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """2-D average pooling over `(N, C, H, W)` or `(C, H, W)` (see `nn.functional.avg_pool2d`).

    Args:
        kernel_size (int or tuple): the window size.
        stride (int or tuple, optional): the step between windows. Default: `kernel_size`.
        padding (int or tuple): implicit zeros on both sides. Default: 0.
        ceil_mode (bool): round the output size up. Default: False.
        count_include_pad (bool): count the padding zeros in the divisor. Default: True.
        divisor_override (int, optional): divide by this instead of the window size.

    >>> nn.AvgPool2d(3, 2)
    AvgPool2d(kernel_size=3, stride=2, padding=0)
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):
        return avg_pool2d(input, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (see `nn.functional.adaptive_avg_pool2d`).

    Args:
        output_size (int or tuple): `(H_out, W_out)`; `None` keeps that dim's size.

    >>> nn.AdaptiveAvgPool2d((2, None))(em.ones(1, 3, 8, 6)).shape
    ember.Size([1, 3, 2, 6])
    """

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input):
        return adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"
