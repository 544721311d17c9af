"""Spatial operations of ember.nn.functional: convolutions, pooling, padding, resizing.

Each is composed from ember's primitive operations, so autograd and the fusion pass
see through them:

* a convolution gathers its input windows as strided slices (one per kernel offset,
  views of the padded input), stacks them into columns and multiplies them with the
  weight in one matrix product; its backward pass is a product and a sum of slice
  writes, never a scatter;
* pooling reduces the same window slices elementwise (max, sum);
* padding writes the input into a filled tensor (constant) or joins reflected,
  replicated or wrapped slices (`cat`);
* bilinear resizing and adaptive averaging are products with small weight matrices.
"""

from __future__ import annotations

import math

import numpy as np

import ember as em
from ember.tracer.unfold import windows

__all__ = ["conv1d", "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d",
           "adaptive_avg_pool2d", "pad", "interpolate"]


# ---------------------------------------------------------------- arguments

def _tuple(value, n: int, name: str) -> tuple:
    """An int or a sequence of n ints as a tuple of n ints (torch's _pair)."""
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            value = tuple(value) * n
        if len(value) != n:
            raise RuntimeError(f"expected {name} to be a single integer value or a list of {n} "
                               f"values to match the convolution dimensions, but got "
                               f"{name}={list(value)}")
        return tuple(int(v) for v in value)
    return (int(value),) * n


def _sizes(shape) -> str:
    return "[" + ", ".join(str(s) for s in shape) + "]"


def _batched(input, ndim: int, what: str):
    """input with a batch dim (added for an unbatched one) and whether it was added."""
    if not isinstance(input, em.Tensor):
        raise TypeError(f"{what}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    if input.ndim == ndim - 1:
        return input.unsqueeze(0), True
    if input.ndim != ndim:
        raise RuntimeError(f"Expected {ndim - 1}D (unbatched) or {ndim}D (batched) input to "
                           f"{what}, but got input of size: {_sizes(input.shape)}")
    return input, False


def _pool_input(input, what: str):
    if not isinstance(input, em.Tensor):
        raise TypeError(f"{what}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(input).__name__}")
    if input.ndim not in (3, 4) or input.numel() == 0:
        raise RuntimeError("non-empty 3D or 4D (batch mode) tensor expected for input")
    return (input.unsqueeze(0), True) if input.ndim == 3 else (input, False)


# ---------------------------------------------------------------- windows

def _window_slices(x, kernel, stride, dilation, out):
    """For every kernel offset (row-major), the view of 4-d x it meets in each window.

    Each view is a plain strided slice of x's last two dims, shaped (N, C, OH, OW).
    """
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dilation, out
    views = []
    for i in range(kh):
        for j in range(kw):
            h0, w0 = i * dh, j * dw
            views.append(x[:, :, h0:h0 + sh * (oh - 1) + 1:sh, w0:w0 + sw * (ow - 1) + 1:sw])
    return views


def _out_size(size, k, s, p_lo, p_hi, d, ceil_mode=False):
    """The number of windows along a dim of `size` (torch's pooling_output_shape)."""
    span = size + p_lo + p_hi - d * (k - 1) - 1
    n = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (n - 1) * s >= size + p_lo:
        n -= 1  # NOTE: the last window must start inside the input or its left padding
    return n


# ---------------------------------------------------------------- padding

_NON_CONSTANT = ("reflect", "replicate", "circular")


def pad(input, pad, mode: str = "constant", value=None):
    """Pad the last `len(pad) // 2` dims of `input`.

    `pad` lists (left, right) amounts from the last dim backwards, as
    `torch.nn.functional.pad`: `(1, 1)` pads the last dim, `(1, 1, 2, 0)` the last dim by
    one on each side and the one before by two at its start. Negative amounts crop
    (constant mode).

    Args:
        input (Tensor): the tensor to pad.
        pad (sequence of ints): the amounts, an even number of them.
        mode (str): ``'constant'`` (fill with `value`, default 0), ``'reflect'`` (mirror
            without repeating the edge), ``'replicate'`` (repeat the edge) or
            ``'circular'`` (wrap around).
        value (float, optional): the fill value of constant mode.

    >>> import ember.nn.functional as F
    >>> F.pad(em.tensor([[1., 2.]]), (1, 2))
    tensor([[0., 1., 2., 0., 0.]])
    >>> F.pad(em.tensor([[1., 2., 3.]]), (2, 1), mode="reflect")
    tensor([[3., 2., 1., 2., 3., 2.]])
    """
    pads = tuple(int(p) for p in pad)
    if len(pads) % 2:
        raise RuntimeError("Padding length must be divisible by 2")
    if len(pads) // 2 > input.ndim:
        raise RuntimeError(f"Padding length should be less than or equal to two times the input "
                           f"dimension but got padding length {len(pads)} and input of "
                           f"dimension {input.ndim}")
    if mode == "constant":
        return _pad_constant(input, pads, 0 if value is None else value)
    if mode not in _NON_CONSTANT:
        raise NotImplementedError(f"Unrecognised padding mode {mode}")
    if value is not None and value != 0:
        raise RuntimeError(f"Padding mode \"{mode}\" doesn't take in value argument")
    k = len(pads) // 2
    if k not in (1, 2, 3) or input.ndim not in (k + 1, k + 2):
        raise NotImplementedError(
            f"Padding size {len(pads)} is not supported for {input.ndim}D input tensor.\n"
            "Supported combinations for non-constant padding:\n"
            "  - 2D or 3D input: padding size = 2 (pads last dimension)\n"
            "  - 3D or 4D input: padding size = 4 (pads last 2 dimensions)\n"
            "  - 4D or 5D input: padding size = 6 (pads last 3 dimensions)")
    out = input
    for i in range(k):
        out = _pad_dim(out, input.ndim - 1 - i, pads[2 * i], pads[2 * i + 1], mode)
    return out


def _pad_constant(x, pads, value):
    ndim = x.ndim
    shape = list(x.shape)
    region = [slice(None)] * ndim
    for i in range(len(pads) // 2):
        d = ndim - 1 - i
        lo, hi = pads[2 * i], pads[2 * i + 1]
        # NOTE: negative amounts crop the input first, then the rest pads
        x = x.narrow(d, max(-lo, 0), x.shape[d] - max(-lo, 0) - max(-hi, 0))
        shape[d] = x.shape[d] + max(lo, 0) + max(hi, 0)
        region[d] = slice(max(lo, 0), max(lo, 0) + x.shape[d])
    if tuple(shape) == tuple(x.shape):
        return x.clone()
    out = em.full(tuple(shape), value, dtype=x.dtype, device=x.device)
    if x.numel():
        out[tuple(region)] = x
    return out


def _pad_dim(x, d, lo, hi, mode):
    size = x.shape[d]
    if mode == "reflect" and (lo >= size or hi >= size):
        raise RuntimeError(f"Argument #4: Padding size should be less than the corresponding "
                           f"input dimension, but got: padding ({lo}, {hi}) at dimension {d} "
                           f"of input {_sizes(x.shape)}")
    if mode == "circular" and (lo > size or hi > size):
        raise RuntimeError("Padding value causes wrapping around more than once.")
    if mode == "replicate" and size == 0:
        raise RuntimeError(f"input tensor must have non-zero size at dimension {d}")
    parts = []
    if mode == "reflect":
        left, right = x.narrow(d, 1, lo).flip(d), x.narrow(d, size - 1 - hi, hi).flip(d)
    elif mode == "replicate":
        edge = list(x.shape)
        left = x.narrow(d, 0, 1).expand(*edge[:d], lo, *edge[d + 1:])
        right = x.narrow(d, size - 1, 1).expand(*edge[:d], hi, *edge[d + 1:])
    else:
        left, right = x.narrow(d, size - lo, lo), x.narrow(d, 0, hi)
    if lo:
        parts.append(left)
    parts.append(x)
    if hi:
        parts.append(right)
    return em.cat(parts, d) if len(parts) > 1 else x.clone()


# ---------------------------------------------------------------- convolution

def _padding(padding, kernel, stride, dilation, n):
    """(low, high) amounts per spatial dim from an int, a tuple, 'same' or 'valid'."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding != "same":
            raise RuntimeError(f"Invalid padding string: '{padding}'")
        if any(s != 1 for s in stride):
            raise RuntimeError("padding='same' is not supported for strided convolutions")
        # NOTE: an odd total puts the extra element at the end, as torch does
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                     for k, d in zip(kernel, dilation))
    pads = _tuple(padding, n, "padding")
    if any(p < 0 for p in pads):
        raise RuntimeError("negative padding is not supported")
    return tuple((p, p) for p in pads)


def _check_conv(x, weight, bias, groups, stride, dilation, transposed=False):
    if not isinstance(weight, em.Tensor):
        raise TypeError(f"conv(): argument 'weight' (position 2) must be Tensor, not "
                        f"{type(weight).__name__}")
    if weight.ndim != x.ndim:
        raise RuntimeError("weight should have at least three dimensions" if weight.ndim < 3
                           else f"Expected {weight.ndim}-dimensional input for "
                           f"{weight.ndim}-dimensional weight {_sizes(weight.shape)}, but got "
                           f"{x.ndim}-dimensional input of size {_sizes(x.shape)} instead")
    if groups <= 0:
        raise RuntimeError("non-positive groups is not supported")
    if any(s <= 0 for s in stride):
        raise RuntimeError("non-positive stride is not supported")
    if any(d <= 0 for d in dilation):
        raise RuntimeError("dilation should be greater than zero")
    channels = x.shape[1]
    if transposed:
        if channels != weight.shape[0]:
            raise RuntimeError(f"Given transposed=1, weight of size {_sizes(weight.shape)}, "
                               f"expected input{_sizes(x.shape)} to have {weight.shape[0]} "
                               f"channels, but got {channels} channels instead")
        out_channels = weight.shape[1] * groups
    else:
        if weight.shape[0] % groups:
            raise RuntimeError(f"Given groups={groups}, expected weight to be divisible by "
                               f"{groups} at dimension 0, but got weight of size "
                               f"[{_sizes(weight.shape)}] instead")
        if channels != weight.shape[1] * groups:
            raise RuntimeError(f"Given groups={groups}, weight of size {_sizes(weight.shape)}, "
                               f"expected input{_sizes(x.shape)} to have "
                               f"{weight.shape[1] * groups} channels, but got {channels} "
                               f"channels instead")
        out_channels = weight.shape[0]
    if bias is not None and (bias.ndim != 1 or bias.shape[0] != out_channels):
        raise RuntimeError(f"Given weight of size {_sizes(weight.shape)}, expected bias to be "
                           f"1-dimensional with {out_channels} elements, but got bias of size "
                           f"{_sizes(bias.shape)} instead")
    if x.dtype != weight.dtype or (bias is not None and bias.dtype != x.dtype):
        other, what = (weight, "weight") if x.dtype != weight.dtype else (bias, "bias")
        raise RuntimeError(f"Input type ({x.dtype.name}) and {what} type ({other.dtype.name}) "
                           f"should be the same")


def _conv2d(x, weight, bias, stride, pads, dilation, groups):
    """The convolution of 4-d x with 4-d weight; pads: ((top, bottom), (left, right))."""
    n, c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    hp, wp = h + sum(pads[0]), w + sum(pads[1])
    ekh, ekw = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    if hp < ekh or wp < ekw:
        raise RuntimeError(f"Calculated padded input size per channel: ({hp} x {wp}). Kernel "
                           f"size: ({ekh} x {ekw}). Kernel size can't be greater than actual "
                           f"input size")
    if any(p for pair in pads for p in pair):
        x = _pad_constant(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]), 0)
    oh, ow = (hp - ekh) // stride[0] + 1, (wp - ekw) // stride[1] + 1
    kk = kh * kw
    cols = _columns(x, (kh, kw), stride, dilation)  # (C, KH, KW, N, OH, OW)
    cols = cols.reshape(groups, cg * kk, n * oh * ow)
    # NOTE: one plain matrix product per group (a broadcast batch would leave BLAS)
    out = weight.reshape(groups, o // groups, cg * kk) @ cols
    if bias is not None:
        out = out + bias.reshape(groups, o // groups, 1)
    # NOTE: the product is laid out (C_out, N, OH, OW); the result is contiguous in
    # torch's (N, C_out, OH, OW) order, so a caller may .view() it
    return out.reshape(o, n, oh, ow).permute(1, 0, 2, 3).contiguous()


def _columns(x, kernel, stride, dilation):
    """Every window of 4-d x as a strided view, (C, KH, KW, N, OH, OW).

    NOTE: one overlapping view (unfold), read once by the reshape that feeds the
    matrix product; its gradient is one scatter-add, not a sum of slice writes.
    """
    u = windows(x, (2, 3), tuple(kernel), tuple(stride), tuple(dilation))
    return u.permute(1, 4, 5, 0, 2, 3)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """2-D convolution (cross-correlation) of `input` with `weight`, as torch's.

    Args:
        input (Tensor): `(N, C_in, H, W)`, or `(C_in, H, W)` unbatched.
        weight (Tensor): `(C_out, C_in / groups, kH, kW)`.
        bias (Tensor, optional): `(C_out,)`.
        stride (int or tuple): the step between windows.
        padding (int, tuple, 'valid' or 'same'): zeros added on both sides of each
            spatial dim; ``'same'`` keeps the input size (stride 1 only).
        dilation (int or tuple): the spacing between kernel elements.
        groups (int): split the channels into this many independent groups.

    Returns:
        Tensor: `(N, C_out, H_out, W_out)` with
        `H_out = (H + 2 * padding - dilation * (kH - 1) - 1) // stride + 1`.

    >>> import ember.nn.functional as F
    >>> x = em.ones(1, 1, 3, 3)
    >>> F.conv2d(x, em.ones(1, 1, 2, 2))
    tensor([[[[4., 4.],
              [4., 4.]]]])
    """
    x, unbatched = _batched(input, 4, "conv2d")
    stride, dilation = _tuple(stride, 2, "stride"), _tuple(dilation, 2, "dilation")
    _check_conv(x, weight, bias, groups, stride, dilation)
    pads = _padding(padding, weight.shape[2:], stride, dilation, 2)
    out = _conv2d(x, weight, bias, stride, pads, dilation, groups)
    return out.squeeze(0) if unbatched else out


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1):
    """1-D convolution (cross-correlation) of `input` with `weight`, as torch's.

    Args:
        input (Tensor): `(N, C_in, L)`, or `(C_in, L)` unbatched.
        weight (Tensor): `(C_out, C_in / groups, k)`.
        bias (Tensor, optional): `(C_out,)`.
        stride, padding, dilation, groups: as in :func:`conv2d`, one value each.

    >>> import ember.nn.functional as F
    >>> F.conv1d(em.tensor([[[1., 2., 3., 4.]]]), em.tensor([[[1., -1.]]]))
    tensor([[[-1., -1., -1.]]])
    """
    x, unbatched = _batched(input, 3, "conv1d")
    stride, dilation = _tuple(stride, 1, "stride"), _tuple(dilation, 1, "dilation")
    _check_conv(x, weight, bias, groups, stride, dilation)
    pads = _padding(padding, weight.shape[2:], stride, dilation, 1)
    out = _conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1,) + stride, ((0, 0),) + pads,
                  (1,) + dilation, groups).squeeze(2)
    return out.squeeze(0) if unbatched else out


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups: int = 1, dilation=1):
    """2-D transposed convolution ("deconvolution"), the gradient of :func:`conv2d`.

    Args:
        input (Tensor): `(N, C_in, H, W)`, or `(C_in, H, W)` unbatched.
        weight (Tensor): `(C_in, C_out / groups, kH, kW)`.
        bias (Tensor, optional): `(C_out,)`.
        stride, padding, dilation, groups: those of the convolution this one inverts.
        output_padding (int or tuple): extra size added to one side of the output.

    Returns:
        Tensor: `(N, C_out, H_out, W_out)` with `H_out = (H - 1) * stride - 2 * padding +
        dilation * (kH - 1) + output_padding + 1`.

    >>> import ember.nn.functional as F
    >>> F.conv_transpose2d(em.ones(1, 1, 2, 2), em.ones(1, 1, 2, 2), stride=2).shape
    ember.Size([1, 1, 4, 4])
    """
    x, unbatched = _batched(input, 4, "conv_transpose2d")
    stride, dilation = _tuple(stride, 2, "stride"), _tuple(dilation, 2, "dilation")
    pads = _tuple(padding, 2, "padding")
    extra = _tuple(output_padding, 2, "output_padding")
    _check_conv(x, weight, bias, groups, stride, dilation, transposed=True)
    if any(p < 0 for p in pads):
        raise RuntimeError("negative padding is not supported")
    if any(e >= s and e >= d for e, s, d in zip(extra, stride, dilation)):
        raise RuntimeError(f"output padding must be smaller than either stride or dilation, "
                           f"but got output_padding_height: {extra[0]} output_padding_width: "
                           f"{extra[1]} stride_height: {stride[0]} stride_width: {stride[1]} "
                           f"dilation_height: {dilation[0]} dilation_width: {dilation[1]}")
    n, c, h, w = x.shape
    cin, og, kh, kw = weight.shape
    if stride != (1, 1):  # spread the input out, stride - 1 zeros between neighbours
        spread = em.zeros(n, c, (h - 1) * stride[0] + 1, (w - 1) * stride[1] + 1,
                          dtype=x.dtype, device=x.device)
        spread[:, :, ::stride[0], ::stride[1]] = x
        x = spread
    # NOTE: the equivalent convolution pads by dilation * (k - 1) - padding (a crop where
    # negative) and takes the weight with in/out channels swapped per group, flipped
    edge = [d * (k - 1) - p for d, k, p in zip(dilation, (kh, kw), pads)]
    x = _pad_constant(x, (edge[1], edge[1] + extra[1], edge[0], edge[0] + extra[0]), 0)
    wt = weight.reshape(groups, cin // groups, og, kh, kw).transpose(1, 2)
    wt = wt.reshape(groups * og, cin // groups, kh, kw).flip((2, 3))
    out = _conv2d(x, wt, bias, (1, 1), ((0, 0), (0, 0)), dilation, groups)
    return out.squeeze(0) if unbatched else out


# ---------------------------------------------------------------- pooling

def _pool_args(kernel_size, stride, padding, dilation, what):
    kernel = _tuple(kernel_size, 2, "kernel_size")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else _tuple(stride, 2, "stride")
    pads, dil = _tuple(padding, 2, "padding"), _tuple(dilation, 2, "dilation")
    if any(k <= 0 for k in kernel):
        raise RuntimeError(f"kernel size should be greater than zero, but got kH: {kernel[0]} "
                           f"kW: {kernel[1]}")
    if any(s <= 0 for s in stride):
        raise RuntimeError(f"stride should be greater than zero, but got dH: {stride[0]} dW: "
                           f"{stride[1]}")
    if any(d <= 0 for d in dil):
        raise RuntimeError(f"dilation should be greater than zero, but got dilationH: {dil[0]} "
                           f"dilationW: {dil[1]}")
    for p, k, d in zip(pads, kernel, dil):
        if p < 0 or p > (d * (k - 1) + 1) // 2:
            raise RuntimeError(f"pad should be at most half of effective kernel size, but got "
                               f"pad={p}, kernel_size={k} and dilation={d}")
    return kernel, stride, pads, dil


def _pool_windows(x, kernel, stride, pads, dil, ceil_mode, fill):
    """The window slices of x padded with `fill`, and the output size."""
    _, c, h, w = x.shape
    out = tuple(_out_size(s, k, st, p, p, d, ceil_mode)
                for s, k, st, p, d in zip((h, w), kernel, stride, pads, dil))
    if out[0] <= 0 or out[1] <= 0:
        raise RuntimeError(f"Given input size: ({c}x{h}x{w}). Calculated output size: "
                           f"({c}x{out[0]}x{out[1]}). Output size is too small")
    # NOTE: with ceil_mode the last window may reach past the right padding
    hi = [max(p, (o - 1) * st + d * (k - 1) + 1 - s - p)
          for s, k, st, p, d, o in zip((h, w), kernel, stride, pads, dil, out)]
    if any(pads) or hi[0] or hi[1]:
        x = _pad_constant(x, (pads[1], hi[1], pads[0], hi[0]), fill)
    return _window_slices(x, kernel, stride, dil, out), out


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    """2-D max pooling over windows of `input`'s last two dims, as torch's.

    Args:
        input (Tensor): `(N, C, H, W)` or `(C, H, W)`.
        kernel_size (int or tuple): the window size.
        stride (int or tuple, optional): the step between windows (default `kernel_size`).
        padding (int or tuple): implicit `-inf` on both sides, at most half the kernel.
        dilation (int or tuple): the spacing between window elements.
        ceil_mode (bool): round the output size up instead of down.
        return_indices (bool): also return each maximum's flat index in its `H * W` plane.

    The gradient goes to the first maximum of each window, as in torch.

    >>> import ember.nn.functional as F
    >>> F.max_pool2d(em.arange(16.).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 5.,  7.],
              [13., 15.]]]])
    """
    x, unbatched = _pool_input(input, "max_pool2d")
    kernel, stride, pads, dil = _pool_args(kernel_size, stride, padding, dilation, "max_pool2d")
    fill = -math.inf if x.dtype.is_floating_point else (
        int(np.iinfo(x.dtype.np).min) if x.dtype.is_integer else False)
    tiles = _tiles(x, kernel, stride, pads, dil, ceil_mode)
    if tiles is not None:
        (oh, ow), stack = _tile_out(x, kernel), _offsets_first(tiles)
        with em.no_grad():
            _, pick = _running_max(list(stack), True)
        # NOTE: the window's first maximum picked by a mask over the offsets: the value
        # is exact (one element plus zeros) and the gradient one fused elementwise kernel
        hot = pick == em.arange(len(stack), device=x.device).reshape(-1, 1, 1, 1, 1)
        out = em.where(hot, stack, em.zeros((), dtype=x.dtype)).sum(0)
        if not return_indices:
            pick = None
    else:
        views, (oh, ow) = _pool_windows(x, kernel, stride, pads, dil, ceil_mode, fill)
        out, pick = _running_max(views, return_indices)
    if return_indices:
        idx = _pool_indices(pick, x.shape[2:], kernel, stride, pads, dil, (oh, ow), x)
        return (out.squeeze(0), idx.squeeze(0)) if unbatched else (out, idx)
    return out.squeeze(0) if unbatched else out


def _tile_out(x, kernel):
    return x.shape[2] // kernel[0], x.shape[3] // kernel[1]


def _offsets_first(tiles):
    """The (N, C, OH, kH, OW, kW) tiles as (kH * kW, N, C, OH, OW): one copy.

    NOTE: pooling windows of a few elements make every elementwise op and reduction
    over the tile view run NumPy loops of two to four elements (a 2x2 max-pool of
    (64, 32, 8, 8) took 10 ms that way); with the window offset first, the window's
    max or sum works on contiguous (N, C, OH, OW) slabs and the reduction runs over
    the leading axis, at the cost of one strided copy (and one back in the gradient).
    """
    n, c, oh, kh, ow, kw = tiles.shape
    return tiles.permute(3, 5, 0, 1, 2, 4).reshape(kh * kw, n, c, oh, ow)


def _tiles(x, kernel, stride, pads, dil, ceil_mode):
    """Non-overlapping windows that tile x, as a (N, C, OH, kH, OW, kW) view, or None.

    Only when the windows are the kernel's tiles: stride == kernel, no padding, no
    dilation (rows and columns past the last whole window are dropped, as floor mode
    drops them; ceil mode needs them unless none are left over).
    """
    if stride != kernel or any(pads) or dil != (1, 1):
        return None
    (h, w), (kh, kw) = x.shape[2:], kernel
    oh, ow = h // kh, w // kw
    if oh == 0 or ow == 0 or (ceil_mode and (h % kh or w % kw)):
        return None
    if (h, w) != (oh * kh, ow * kw):
        x = x[:, :, :oh * kh, :ow * kw]
    return x.reshape(x.shape[0], x.shape[1], oh, kh, ow, kw)


def _running_max(views, want_index):
    """The elementwise maximum of the window slices and (optionally) its position.

    NOTE: a chain of selections, not a reduction over stacked windows: it fuses into
    one kernel, and its gradient goes to the first maximum of each window (a later
    equal value does not replace it), as torch's max_pool2d; NaN wins, as in torch.
    """
    out, pick = views[0], None
    floating = out.dtype.is_floating_point
    for k, v in enumerate(views[1:], 1):
        with em.no_grad():
            take = v > out
            if floating:
                take = take | v.isnan()
            if want_index:
                pick = em.where(take, k, 0 if pick is None else pick)
        out = em.where(take, v, out)
    if len(views) == 1:
        out = out.clone()
    if want_index and pick is None:
        pick = em.zeros(out.shape, dtype=em.int64)
    return out, pick


def _pool_indices(pick, size, kernel, stride, pads, dil, out, x):
    """torch's max-pool indices: row * W + col of each maximum in the unpadded input."""
    kw = kernel[1]
    k = pick
    rows = em.arange(out[0]).reshape(out[0], 1) * stride[0] - pads[0] + (k // kw) * dil[0]
    cols = em.arange(out[1]) * stride[1] - pads[1] + (k % kw) * dil[1]
    idx = rows * size[1] + cols
    return idx.expand(x.shape[0], x.shape[1], out[0], out[1]).contiguous()


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True, divisor_override=None):
    """2-D average pooling over windows of `input`'s last two dims, as torch's.

    Args:
        input (Tensor): `(N, C, H, W)` or `(C, H, W)`.
        kernel_size (int or tuple): the window size.
        stride (int or tuple, optional): the step between windows (default `kernel_size`).
        padding (int or tuple): implicit zeros on both sides, at most half the kernel.
        ceil_mode (bool): round the output size up instead of down.
        count_include_pad (bool): whether the padding zeros count in the divisor.
        divisor_override (int, optional): divide every window sum by this instead.

    >>> import ember.nn.functional as F
    >>> F.avg_pool2d(em.arange(16.).reshape(1, 1, 4, 4), 2)
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
    """
    x, unbatched = _pool_input(input, "avg_pool2d")
    kernel, stride, pads, dil = _pool_args(kernel_size, stride, padding, 1, "avg_pool2d")
    if divisor_override is not None and divisor_override == 0:
        raise RuntimeError("divisor must be not zero")
    tiles = _tiles(x, kernel, stride, pads, (1, 1), ceil_mode)
    if tiles is not None:  # NOTE: its gradient is one broadcast, not a write per offset
        div = kernel[0] * kernel[1] if divisor_override is None else divisor_override
        res = _offsets_first(tiles).sum(0) / div
        return res.squeeze(0) if unbatched else res
    views, out = _pool_windows(x, kernel, stride, pads, dil, ceil_mode, 0)
    total = views[0]
    for v in views[1:]:
        total = total + v
    if divisor_override is not None:
        res = total / divisor_override
    else:
        counts = [_counts(s, k, st, p, o, count_include_pad)
                  for s, k, st, p, o in zip(x.shape[2:], kernel, stride, pads, out)]
        div = np.outer(counts[0], counts[1]).astype(x.dtype.np)
        res = total / em.tensor(div, device=x.device)
    if len(views) == 1:
        res = res.contiguous()
    return res.squeeze(0) if unbatched else res


def _counts(size, k, s, p, out, include_pad):
    """The number of elements each window along one dim averages (torch's rule)."""
    counts = []
    for i in range(out):
        start = i * s - p
        end = min(start + k, size + p)
        if not include_pad:
            start, end = max(start, 0), min(end, size)
        counts.append(end - start)
    return np.array(counts, dtype=np.float64)


def adaptive_avg_pool2d(input, output_size):
    """Average pooling to a fixed output size, with torch's window boundaries.

    Window `i` along a dim of size `S` to `O` outputs covers
    `[floor(i * S / O), ceil((i + 1) * S / O))`.

    Args:
        input (Tensor): `(N, C, H, W)` or `(C, H, W)`.
        output_size (int or tuple): `(H_out, W_out)`; `None` keeps that dim's size.

    >>> import ember.nn.functional as F
    >>> F.adaptive_avg_pool2d(em.arange(16.).reshape(1, 1, 4, 4), 1)
    tensor([[[[7.5000]]]])
    """
    if not isinstance(input, em.Tensor) or input.ndim not in (3, 4):
        raise RuntimeError(f"adaptive_avg_pool2d(): Expected 3D or 4D tensor, but got "
                           f"{_sizes(getattr(input, 'shape', ()))}")
    h, w = input.shape[-2:]
    sizes = output_size if isinstance(output_size, (tuple, list)) else (output_size,) * 2
    if len(sizes) != 2:
        raise RuntimeError("adaptive_avg_pool2d: output_size must be 2")
    oh, ow = (s if o is None else int(o) for o, s in zip(sizes, (h, w)))
    if (oh, ow) == (1, 1):
        return input.mean((-2, -1), keepdim=True)
    if h % oh == 0 and w % ow == 0:
        return avg_pool2d(input, (h // oh, w // ow))
    dtype = input.dtype.np
    ah = em.tensor(_adaptive_matrix(h, oh).astype(dtype), device=input.device)
    aw = em.tensor(_adaptive_matrix(w, ow).astype(dtype), device=input.device)
    return (ah @ input @ aw.t()).contiguous()


def _adaptive_matrix(size, out):
    m = np.zeros((out, size))
    for i in range(out):
        lo, hi = (i * size) // out, -((-(i + 1) * size) // out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


# ---------------------------------------------------------------- resizing

_INTERP_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area",
                 "nearest-exact")


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest",
                align_corners=None, recompute_scale_factor=None, antialias: bool = False):
    """Resize the spatial dims of `input` (nearest or bilinear), as torch's.

    Args:
        input (Tensor): `(N, C, W)` for nearest, `(N, C, H, W)` for nearest and bilinear.
        size (int or tuple, optional): the output size.
        scale_factor (float or tuple, optional): multiplies the input size instead.
        mode (str): ``'nearest'`` or ``'bilinear'``.
        align_corners (bool, optional): bilinear only: whether the corner pixels'
            centres of input and output coincide (default False).
        recompute_scale_factor (bool, optional): compute the source positions from the
            output size rather than from `scale_factor`.

    >>> import ember.nn.functional as F
    >>> F.interpolate(em.tensor([[[1., 2.]]]), scale_factor=2)
    tensor([[[1., 1., 2., 2.]]])
    """
    if mode not in ("nearest", "bilinear"):
        if mode in _INTERP_MODES:
            raise NotImplementedError(f"interpolate: mode '{mode}' is not supported by ember")
        raise NotImplementedError(
            f"Input Error: Only 3D, 4D and 5D input Tensors supported (got {input.ndim}D) for "
            f"the modes: nearest | linear | bilinear | bicubic | trilinear | lanczos | area | "
            f"nearest-exact (got {mode})")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("align_corners option can only be set with the interpolating modes: "
                         "linear | bilinear | bicubic | trilinear")
    if antialias:
        raise NotImplementedError("interpolate: antialias is not supported by ember")
    dims = input.ndim - 2
    if mode == "bilinear" and dims != 2:
        raise NotImplementedError(f"Got {input.ndim}D input, but bilinear mode needs 4D input")
    if dims not in (1, 2):
        raise NotImplementedError(f"interpolate: {input.ndim}D input is not supported by ember")
    in_sizes = tuple(input.shape[2:])
    out_sizes, scales = _interp_sizes(in_sizes, size, scale_factor, recompute_scale_factor)
    out = input
    for i, (n_in, n_out, scale) in enumerate(zip(in_sizes, out_sizes, scales)):
        d = 2 + i
        if mode == "nearest":
            src = _nearest_index(n_in, n_out, scale)
            out = out.index_select(d, em.tensor(src, dtype=em.int64, device=input.device))
        else:
            m = _linear_matrix(n_in, n_out, scale, bool(align_corners))
            mt = em.tensor(m.T.astype(input.dtype.np), device=input.device)
            out = (out.movedim(d, -1) @ mt).movedim(-1, d)
    return out.contiguous()


def _interp_sizes(in_sizes, size, scale_factor, recompute):
    n = len(in_sizes)
    if size is not None and scale_factor is not None:
        raise ValueError("only one of size or scale_factor should be defined")
    if size is None and scale_factor is None:
        raise ValueError("either size or scale_factor should be defined")
    if size is not None:
        sizes = tuple(size) if isinstance(size, (tuple, list)) else (size,) * n
        if len(sizes) != n:
            raise ValueError(f"Input and output must have the same number of spatial "
                             f"dimensions, but got input with spatial dimensions of "
                             f"{list(in_sizes)} and output size of {list(sizes)}. Please "
                             f"provide input tensor in (N, C, d1, d2, ...,dK) format and output "
                             f"size in (o1, o2, ...,oK) format.")
        return tuple(int(s) for s in sizes), (None,) * n
    factors = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) \
        else (scale_factor,) * n
    if len(factors) != n:
        raise ValueError(f"Input and scale_factor must have the same number of spatial "
                         f"dimensions, but got input with spatial dimensions of "
                         f"{list(in_sizes)} and scale_factor of shape {list(factors)}. Please "
                         f"provide input tensor in (N, C, d1, d2, ...,dK) format and "
                         f"scale_factor in (s1, s2, ...,sK) format.")
    sizes = tuple(int(math.floor(s * float(f))) for s, f in zip(in_sizes, factors))
    return sizes, ((None,) * n if recompute else tuple(float(f) for f in factors))


def _nearest_index(n_in, n_out, scale):
    # NOTE: torch computes the ratio in float32: floor(dst * (float) (1 / scale))
    ratio = np.float32(1.0 / scale) if scale else np.float32(n_in / n_out)
    src = np.floor(np.arange(n_out, dtype=np.float32) * ratio).astype(np.int64)
    return np.minimum(src, n_in - 1)


def _linear_matrix(n_in, n_out, scale, align_corners):
    """(n_out, n_in) weights of linear interpolation (torch's source index rule)."""
    m = np.zeros((n_out, n_in))
    if align_corners:
        ratio = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    else:
        ratio = 1.0 / scale if scale else n_in / n_out
    for i in range(n_out):
        if align_corners:
            src = i * ratio
        else:
            src = max((i + 0.5) * ratio - 0.5, 0.0)
        lo = min(int(math.floor(src)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        frac = src - lo
        m[i, lo] += 1.0 - frac
        m[i, hi] += frac
    return m
