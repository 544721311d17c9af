"""More elementwise operations: inverse and hyperbolic trigonometry, atan2, hypot,
copysign, fmod, bit shifts, isclose and allclose.

Each is one primitive (NumPy's ufunc of the same meaning, so results are NumPy's and
PyTorch's) or a few, built with `elementwise._apply`, which promotes and broadcasts
with PyTorch's rules and records the GradFn named after PyTorch's.
"""

from __future__ import annotations

from ..ir import build as b
from ..ir import dtypes as dt
from ..ir.node import Node, node
from ..ir.ops import Op
from .elementwise import (
    _TORCH_KERNEL_NAME,
    _apply,
    _dtype_of,
    _float_dtype,
    _float_unary,
    abs,
    as_operand,
    check_int_divisor,
    logical_and,
    logical_or,
)
from .tensor import Tensor

__all__ = [
    "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "arcsin", "arccos",
    "arctan", "arcsinh", "arccosh", "arctanh", "atan2", "arctan2", "hypot", "copysign",
    "fmod", "bitwise_left_shift", "bitwise_right_shift", "isclose", "allclose",
]

_UNARY_DOC = """Elementwise {what} of `input`; integer and bool inputs give the default float
    dtype. `em.{alias}` is an alias.

    >>> em.{name}(em.tensor([{arg}]))
    tensor([{out}])
    """


def _unary(op: Op, name: str, what: str, arg: str, out: str):
    fn = _float_unary(op, name.capitalize() + "Backward0")
    fn.__name__ = name
    alias = "arc" + name[1:] if name.startswith("a") else name
    fn.__doc__ = _UNARY_DOC.format(what=what, alias=alias, name=name, arg=arg, out=out)
    return fn


asin = _unary(Op.ASIN, "asin", "arcsine (NaN outside [-1, 1])", "0.5", "0.5236")
acos = _unary(Op.ACOS, "acos", "arccosine (NaN outside [-1, 1])", "0.5", "1.0472")
atan = _unary(Op.ATAN, "atan", "arctangent", "1.0", "0.7854")
sinh = _unary(Op.SINH, "sinh", "hyperbolic sine", "1.0", "1.1752")
cosh = _unary(Op.COSH, "cosh", "hyperbolic cosine", "1.0", "1.5431")
asinh = _unary(Op.ASINH, "asinh", "inverse hyperbolic sine", "1.0", "0.8814")
acosh = _unary(Op.ACOSH, "acosh", "inverse hyperbolic cosine (NaN below 1)", "2.0", "1.3170")
atanh = _unary(Op.ATANH, "atanh", "inverse hyperbolic tangent (+-inf at +-1)", "0.5",
               "0.5493")
for _f in (sinh, cosh):
    _f.__doc__ = _f.__doc__.replace(" `em.sinh` is an alias.", "").replace(
        " `em.cosh` is an alias.", "")
arcsin, arccos, arctan = asin, acos, atan
arcsinh, arccosh, arctanh = asinh, acosh, atanh


def _tensor_other(name: str, other) -> None:
    """PyTorch's binding refuses a number where these take a Tensor `other`."""
    if not isinstance(other, Tensor):
        raise TypeError(f"{name}(): argument 'other' (position 2) must be Tensor, not "
                        f"{type(other).__name__}")


def atan2(input, other) -> Tensor:
    """The angle of the point (other, input): arctan(input / other) in the right
    quadrant, in [-pi, pi]. Broadcast; integers give the default float dtype.
    `em.arctan2` is an alias.

    >>> em.atan2(em.tensor([1.0, -1.0]), em.tensor([-1.0, -1.0]))
    tensor([ 2.3562, -2.3562])
    """
    _tensor_other("atan2", other)
    return _apply(Op.ATAN2, (input, other), "Atan2Backward0",
                  compute=_float_dtype((input, other)))


arctan2 = atan2


def hypot(input, other) -> Tensor:
    """sqrt(input^2 + other^2) elementwise, without overflow in between; floats only.

    >>> em.hypot(em.tensor([3.0, 5.0]), em.tensor([4.0, 12.0]))
    tensor([ 5., 13.])
    """
    _tensor_other("hypot", other)
    d = _dtype_of([as_operand(input), other])
    if not d.is_floating_point:
        raise NotImplementedError(f'"hypot_cpu" not implemented for \'{_torch_name(d)}\'')
    return _apply(Op.HYPOT, (input, other), "HypotBackward0")


def copysign(input, other) -> Tensor:
    """|input| with the sign of `other` (its sign bit: -0.0 counts as negative).
    Broadcast; integers give the default float dtype. The gradient of `other` is 0.

    >>> em.copysign(em.tensor([1.0, -2.0, 3.0]), em.tensor([-0.0, 1.0, -1.0]))
    tensor([-1.,  2., -3.])
    """
    name = "CopysignBackward0" if isinstance(other, Tensor) else "CopysignBackward1"
    return _apply(Op.COPYSIGN, (input, other), name, compute=_float_dtype((input, other)))


def fmod(input, other) -> Tensor:
    """C's fmod: the remainder of input / other rounded toward zero, with the sign of
    `input` (`em.remainder` takes other's). An integer division by zero raises.

    >>> em.fmod(em.tensor([-3.0, 3.0]), 2)
    tensor([-1.,  1.])
    """
    if not isinstance(input, Tensor):
        raise TypeError("fmod() received an invalid combination of arguments - got "
                        f"({type(input).__name__}, {type(other).__name__})")
    check_int_divisor(input, other)
    name = "FmodBackward1" if isinstance(other, Tensor) else "FmodBackward0"
    return _apply(Op.FMOD, (input, other), name)


def _torch_name(d: dt.DType) -> str:
    """The dtype's name in PyTorch's kernel errors (`Long`, `Float`, `Bool`...)."""
    return _TORCH_KERNEL_NAME[d.name]


def _shift(op: Op, kernel: str, name: str):
    def fn(input, other) -> Tensor:
        operands = [as_operand(input), as_operand(other)]
        d = _dtype_of(operands)
        if not d.is_integer:
            raise NotImplementedError(f'"{kernel}_cpu" not implemented for '
                                      f"'{_torch_name(d)}'")
        bits = d.np.itemsize * 8

        def build(x: Node, s: Node) -> Node:
            # NOTE: PyTorch's rule for shift counts outside [0, bits): a left shift
            # gives 0, a right shift fills with the sign bit (C leaves both undefined)
            out_of_range = node(Op.OR, (node(Op.LT, (s, b.like(s, 0))),
                                        node(Op.LE, (b.like(s, bits), s))))
            if op is Op.SHL:
                safe = b.where(out_of_range, b.like(s, 0), s)
                return b.where(out_of_range, b.like(x, 0), node(Op.SHL, (x, safe)))
            return node(Op.SHR, (x, b.where(out_of_range, b.like(s, bits - 1), s)))
        return _apply(op, operands, name, build=build)
    fn.__name__ = name
    return fn


bitwise_left_shift = _shift(Op.SHL, "lshift", "bitwise_left_shift")
bitwise_right_shift = _shift(Op.SHR, "rshift", "bitwise_right_shift")
bitwise_left_shift.__doc__ = """`input << other` on integer tensors (and numbers), broadcast
    and promoted; shifting by a negative count or by the dtype's width or more gives 0.
    Floats raise, as in PyTorch.

    >>> em.bitwise_left_shift(em.tensor([1, 3]), 2)
    tensor([ 4, 12])
    """
bitwise_right_shift.__doc__ = """`input >> other` on integer tensors (and numbers): an
    arithmetic shift (the sign bit fills); by a negative count or by the dtype's width or
    more, every bit is the sign bit. Floats raise, as in PyTorch.

    >>> em.bitwise_right_shift(em.tensor([16, -16]), 2)
    tensor([ 4, -4])
    """


def isclose(input, other, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Tensor:
    """Where `|input - other| <= atol + rtol * |other|` (or the two are equal, infinities
    included; NaN equals NaN with `equal_nan`), as a bool tensor of the broadcast shape.
    Both tensors have one dtype.

    >>> em.isclose(em.tensor([1.0, 2.0, float("nan")]), em.tensor([1.0, 2.1, float("nan")]))
    tensor([ True, False, False])
    """
    _tensor_other("isclose", other)
    x, y = as_operand(input), other
    if isinstance(x, Tensor) and isinstance(y, Tensor) and x.dtype is not y.dtype:
        raise RuntimeError(f"{_torch_name(x.dtype)} did not match {_torch_name(y.dtype)}")
    if rtol < 0:
        raise RuntimeError(f"rtol must be greater than or equal to zero, but got {rtol}")
    if atol < 0:
        raise RuntimeError(f"atol must be greater than or equal to zero, but got {atol}")
    close = _apply(Op.EQ, (x, y), "isclose", out=dt.bool_)
    if equal_nan and _dtype_of([x, y]).is_floating_point:
        both_nan = _apply(Op.NE, (x, y), "isclose", out=dt.bool_, build=lambda p, q: node(
            Op.AND, (node(Op.NE, (p, p)), node(Op.NE, (q, q)))))
        close = logical_or(close, both_nan)
    if rtol == 0 and atol == 0:
        return close
    d = _float_dtype((x, y))
    diff = _apply(Op.SUB, (x, y), "isclose", compute=d,
                  build=lambda p, q: node(Op.ABS, (node(Op.SUB, (p, q)),)))
    allowed = abs(y * rtol) + atol
    # NOTE: an infinite difference is never within tolerance (inf <= inf would say so)
    finite = _apply(Op.EQ, (diff,), "isclose", out=dt.bool_, build=lambda p: node(
        Op.EQ, (node(Op.SUB, (p, p)), b.like(p, 0))))
    within = _apply(Op.LE, (diff, allowed), "isclose", out=dt.bool_)
    return logical_or(close, logical_and(finite, within))


def allclose(input, other, rtol: float = 1e-05, atol: float = 1e-08,
             equal_nan: bool = False) -> bool:
    """Whether every element of `isclose(input, other, rtol, atol, equal_nan)` holds: a
    Python bool (it reads the values).

    >>> em.allclose(em.tensor([1.0, 2.0]), em.tensor([1.0, 2.0 + 1e-7]))
    True
    """
    return bool(isclose(input, other, rtol, atol, equal_nan).all())


# Tensor methods: `t.atan2(y)` is `atan2(t, y)`; `t << k` and `t >> k` shift
for _name in __all__:
    setattr(Tensor, _name, globals()[_name])
Tensor.__lshift__ = bitwise_left_shift
Tensor.__rlshift__ = lambda self, other: bitwise_left_shift(other, self)
Tensor.__rshift__ = bitwise_right_shift
Tensor.__rrshift__ = lambda self, other: bitwise_right_shift(other, self)
