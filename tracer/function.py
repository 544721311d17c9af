"""Custom autograd functions (`em.autograd.Function`) and tensor hooks.

A `Function` subclass gives a static `forward(ctx, *args)` and `backward(ctx,
*grads)`. `apply` runs forward under no_grad, then records one GradFn named
`<Name>Backward` over the tensor arguments whose `rule` holds a `_Custom`: the
autograd engine (tracer/autograd.py) hands such a record the incoming cotangents
and the record calls the user's backward in Python, instead of asking the
autodiff pass. A function with several outputs gives each output a slot record
(`_Slot`) that forwards its cotangent to the shared record, so the user's
backward gets one gradient per output.

The backward runs with grad mode set as the pass's `create_graph`, so a backward
written with differentiable tensor operations supports double backward. Backward
plans (tracer/plans.py) never cache a pass through a custom function: the
user's Python code makes its gradient.

Tensor hooks (`Tensor.register_hook`) live in `_HOOKS`, keyed by the record
they watch (a GradFn for a non-leaf, an AccumulateGrad for a leaf); the engine
applies them to the cotangent before it flows on, or before it reaches `.grad`.
"""

from __future__ import annotations

import weakref

from ..ir.node import Node
from . import mode
from .records import AccumulateGrad, GradFn, _describe, edge
from .tensor import Tensor, wrap_node

__all__ = ["Function", "FunctionCtx", "RemovableHandle", "apply_hooks", "register_hook"]


class FunctionCtx:
    """The `ctx` a custom Function's forward and backward share.

    Any attribute can be set on it. `save_for_backward(*tensors)` keeps tensors for
    backward (read back by `saved_tensors`, which checks that none was modified in
    place since); `needs_input_grad` says, per forward argument, whether its
    gradient is wanted; `mark_non_differentiable(*outputs)` and
    `set_materialize_grads(flag)` are PyTorch's.
    """

    def __init__(self):
        self._saved = ()
        self._non_diff = set()
        self.materialize_grads = True
        self.needs_input_grad = ()

    def save_for_backward(self, *tensors) -> None:
        """Keep `tensors` (or None) for backward."""
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError("save_for_backward can only save variables, but argument "
                                f"{tensors.index(t)} is of type {type(t).__name__}")
        self._saved = tuple((t, None if t is None else t._storage.version) for t in tensors)

    @property
    def saved_tensors(self) -> tuple:
        """The tensors given to `save_for_backward`."""
        out = []
        for t, version in self._saved:
            if t is not None and t._storage.version != version:
                dtype, shape = _describe(t)
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: [ember.{dtype.name.capitalize()}Tensor "
                    f"[{', '.join(map(str, shape))}]] is at version {t._storage.version}; "
                    f"expected version {version} instead.")
            out.append(t)
        return tuple(out)

    saved_variables = saved_tensors

    def mark_non_differentiable(self, *outputs) -> None:
        """Mark outputs as not requiring gradients (their gradient in backward is zeros)."""
        self._non_diff.update(id(t) for t in outputs)

    def set_materialize_grads(self, value: bool) -> None:
        """Whether backward gets zeros (True, the default) or None for an output whose
        gradient is undefined."""
        self.materialize_grads = bool(value)

    def mark_dirty(self, *tensors) -> None:
        """Accepted for PyTorch's API; ember records the in-place write itself."""


class _Custom:
    """The `rule` of a custom function's record: the engine calls `propagate`."""

    __slots__ = ("cls", "ctx", "n_args", "arg_edges", "outputs")

    def __init__(self, cls, ctx, n_args, arg_edges, outputs):
        self.cls = cls
        self.ctx = ctx
        self.n_args = n_args
        self.arg_edges = arg_edges   # (argument position, edge) of tensor arguments
        self.outputs = outputs       # (dtype, shape, device) per output (None: not a tensor)

    def saves_nothing(self) -> bool:
        """Whether ctx saved no tensor: the record stays usable after a pass, as in torch."""
        return not self.ctx._saved

    def release(self) -> None:
        self.ctx._saved = ()

    def propagate(self, fn: GradFn, g, add, cots, create_graph: bool) -> None:
        parts = g if isinstance(g, list) else [g]
        grads = []
        for desc, gi in zip(self.outputs, parts):
            if gi is None:
                if self.ctx.materialize_grads and desc is not None:
                    dtype, shape, device = desc
                    from .creation import zeros
                    gi = zeros(shape, dtype=dtype, device=device)
            elif isinstance(gi, Node):
                gi = wrap_node(gi, desc[2] if desc is not None else "cpu")
            grads.append(gi)
        name = fn.name()
        result = self.cls.backward(self.ctx, *grads)
        if not isinstance(result, tuple):
            result = (result,)
        if len(result) != self.n_args:
            if len(result) > self.n_args and all(r is None for r in result[self.n_args:]):
                result = result[:self.n_args]
            else:
                raise RuntimeError(f"function {name} returned an incorrect number of "
                                   f"gradients (expected {self.n_args}, got {len(result)})")
        tensor_positions = {pos for pos, _ in self.arg_edges}
        for pos, gi in enumerate(result):
            if gi is not None and pos not in tensor_positions:
                raise RuntimeError(f"Function {name} returned a gradient different than None "
                                   f"at position {pos + 1}, but the corresponding forward input "
                                   "was not a Variable")
        for pos, e in self.arg_edges:
            gi = result[pos]
            if gi is None or e is None:
                continue
            if not isinstance(gi, Tensor):
                raise TypeError(f"function {name} returned a gradient of type "
                                f"{type(gi).__name__} at index {pos}; expected a Tensor or None")
            gi = _fit(gi, fn.saved[pos][2], name, pos)
            add(e, gi if create_graph else gi.node)


def _fit(g: Tensor, desc, name: str, pos: int) -> Tensor:
    """g summed to the input's shape where it broadcasts to it (PyTorch's sum_to), cast
    to its dtype; raises where its shape cannot be."""
    dtype, shape = desc
    gs = tuple(g.shape)
    if gs != tuple(shape):
        lead = len(gs) - len(shape)
        ok = lead >= 0 and all(s == 1 or s == gd for s, gd in zip(shape, gs[lead:]))
        if not ok:
            raise RuntimeError(f"Function {name} returned an invalid gradient at index {pos} - "
                               f"got {list(gs)} but expected shape compatible with "
                               f"{list(shape)}")
        dims = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape)
                                          if s == 1 and gs[lead + i] != 1)
        g = g.sum(dim=dims, keepdim=True) if dims else g
        g = g.reshape(shape)
    return g if g.dtype is dtype else g.to(dtype)


class _Slot:
    """The rule of one output's record in a function with several outputs."""

    __slots__ = ("custom", "index", "count")

    def __init__(self, custom: GradFn, index: int, count: int):
        self.custom = custom
        self.index = index
        self.count = count

    def saves_nothing(self) -> bool:
        return True  # NOTE: the record it feeds says whether a second pass may run

    def release(self) -> None:
        pass

    def propagate(self, fn: GradFn, g, add, cots, create_graph: bool) -> None:
        entry = cots.get(id(self.custom))
        parts = entry[1] if entry is not None else [None] * self.count
        parts[self.index] = g
        cots[id(self.custom)] = (self.custom, parts)


class _FunctionMeta(type):
    """Names a Function's record class `<Name>Backward`, as PyTorch's."""

    def __init__(cls, name, bases, attrs):
        super().__init__(name, bases, attrs)
        cls._backward_name = name + "Backward"


class Function(metaclass=_FunctionMeta):
    """Base class of custom differentiable operations (PyTorch's `autograd.Function`).

    Subclass it with static methods `forward(ctx, *args, **kwargs)` (returns a
    tensor or a tuple of tensors; runs under no_grad) and `backward(ctx, *grads)`
    (one gradient per output; returns one gradient, or None, per forward argument),
    and call `MyFn.apply(*args)`. Gradients returned are summed to the argument's
    shape where they broadcast to it; any other shape raises.

    Inside `em.compile`, a Function is traced like any other code (no graph break):
    the operations of its forward, and of its backward when the traced function runs
    backward, are recorded into the compiled program; Python side effects in them
    happen while tracing only.

    >>> import ember as em
    >>> class Square(em.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         x, = ctx.saved_tensors
    ...         return 2 * x * g
    >>> x = em.tensor([1.0, 3.0], requires_grad=True)
    >>> y = Square.apply(x)
    >>> y.grad_fn.name()
    'SquareBackward'
    >>> y.sum().backward()
    >>> x.grad
    tensor([2., 6.])
    """

    def __init__(self, *args, **kwargs):
        pass

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("You must implement the forward function for custom "
                                  "autograd.Function.")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("You must implement either the backward or vjp method for "
                                  "your custom autograd.Function to use it with backward "
                                  "mode AD.")

    vjp = backward

    @staticmethod
    def setup_context(ctx, inputs, output):
        """Override it (PyTorch 2's style) to take ctx out of forward: forward(*args) runs
        without ctx, then setup_context(ctx, inputs, output) saves what backward needs."""
        raise NotImplementedError("setup_context is not overridden")

    @classmethod
    def apply(cls, *args, **kwargs):
        """Run forward on `args` and record backward for the tensors among them."""
        ctx = FunctionCtx()
        grad_on = mode.is_grad_enabled()
        ctx.needs_input_grad = tuple(
            isinstance(a, Tensor) and a._requires_grad and grad_on for a in args)
        with mode.no_grad():
            if cls.setup_context is not Function.setup_context:
                out = cls.forward(*args, **kwargs)
                cls.setup_context(ctx, args, out)
            else:
                out = cls.forward(ctx, *args, **kwargs)
        single = not isinstance(out, tuple)
        outs = (out,) if single else out
        if not any(ctx.needs_input_grad):
            return out
        outs = tuple(_own(o, args) if isinstance(o, Tensor) else o for o in outs)
        diff = [i for i, o in enumerate(outs) if isinstance(o, Tensor)
                and o.dtype.is_floating_point and id(o) not in ctx._non_diff]
        if diff:
            _record(cls, ctx, args, outs, diff)
        return outs[0] if single else outs


def _own(o: Tensor, args) -> Tensor:
    """An output of its own: an argument returned as it is becomes an alias of it (a view
    sharing its memory), so the argument's own record is left alone."""
    if any(o is a for a in args) or o._grad_fn is not None or o._requires_grad:
        with mode.no_grad():
            return o.view_as(o)
    return o


def _record(cls, ctx, args, outs, diff) -> None:
    """Record the function over its tensor arguments, for its outputs at positions diff."""
    tensors = [(i, a) for i, a in enumerate(args) if isinstance(a, Tensor)]
    edges = tuple(edge(a) if ctx.needs_input_grad[i] else None for i, a in tensors)
    saved = [(None, None, None)] * len(args)
    for i, a in tensors:
        saved[i] = (a._storage, None, _describe(a))
    custom = _Custom(cls, ctx, len(args), tuple((i, e) for (i, _), e in zip(tensors, edges)),
                     tuple(_describe(o) + (o._storage.device,) if isinstance(o, Tensor) else None
                           for o in outs))
    name = cls._backward_name
    first = outs[diff[0]]
    # NOTE: versions are None: a custom record checks only what ctx saved (saved_tensors)
    fn = GradFn(name, edges, tuple(a.node for _, a in tensors), first.node, tuple(saved),
                (first._storage, None))
    fn.rule = (custom,)
    if len(outs) == 1:
        _attach(first, fn)
        return
    for k in diff:
        o = outs[k]
        slot = GradFn(name, (fn,), (o.node,), o.node, ((o._storage, None, _describe(o)),),
                      (o._storage, None))
        slot.rule = (_Slot(fn, k, len(outs)),)
        _attach(o, slot)


def _attach(t: Tensor, fn: GradFn) -> None:
    t._grad_fn = fn
    t._requires_grad = True
    t._fn_version = t._storage.version


def is_python(fn) -> bool:
    """Whether fn's gradient is made by Python code (a custom function's record)."""
    rule = getattr(fn, "rule", None)
    return rule is not None and not isinstance(rule[0], str)


# ---------------------------------------------------------------------------
# tensor hooks

_HOOKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class RemovableHandle:
    """What `register_hook` returns: `remove()` unregisters the hook."""

    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks: list, hook):
        self._hooks = hooks
        self._hook = hook

    def remove(self) -> None:
        """Unregister the hook (a second call does nothing)."""
        try:
            self._hooks.remove(self._hook)
        except ValueError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def register_hook(t: Tensor, hook) -> RemovableHandle:
    if not t._requires_grad:
        raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
    if not callable(hook):
        raise TypeError(f"hook must be callable, got {type(hook).__name__}")
    key = t.grad_fn
    if key is None:
        if t._accum is None:
            t._accum = AccumulateGrad(t)
        key = t._accum
    hooks = _HOOKS.get(key)
    if hooks is None:
        hooks = _HOOKS[key] = []
    hooks.append(hook)
    return RemovableHandle(hooks, hook)


def has_hooks(key) -> bool:
    return bool(_HOOKS) and bool(_HOOKS.get(key))


def _device_of(key) -> str:
    """The device of the tensor a hook's key stands for (a leaf's accumulator, a record)."""
    t = getattr(key, "variable", None)
    if t is not None:
        return t._storage.device
    saved = getattr(key, "out_saved", None)
    if saved and saved[0] is not None:
        return saved[0].device
    return "cpu"


def apply_hooks(key, g, create_graph: bool):
    """g after the hooks registered on `key` (a node or a Tensor, as given)."""
    hooks = _HOOKS.get(key)
    if not hooks:
        return g
    as_node = isinstance(g, Node)
    t = wrap_node(g, _device_of(key)) if as_node else g
    for hook in list(hooks):
        new = hook(t)
        if new is not None:
            if not isinstance(new, Tensor):
                raise TypeError(f"hook returned {type(new).__name__}; expected a Tensor or "
                                "None")
            if tuple(new.shape) != tuple(t.shape):
                raise RuntimeError(f"hook 'hook' has changed the size of value: expected "
                                   f"{list(t.shape)}, got {list(new.shape)}")
            t = new
    return t.node if as_node else t


def _tensor_register_hook(self, hook) -> RemovableHandle:
    """Register `hook(grad)`, called with this tensor's gradient each time it is computed;
    a tensor it returns replaces the gradient. Returns a handle whose `remove()` unregisters
    it. On a leaf the hook sees the gradient before it is added to `.grad`; a retained
    gradient (`retain_grad`) is the one after the hooks, as in PyTorch; an input of
    `em.autograd.grad` gets a non-leaf's gradient before its hooks. Inside `em.compile`
    the hook runs while tracing: what it computes is part of the compiled program, its
    Python side effects happen only then.

    >>> x = em.tensor([1.0, 2.0], requires_grad=True)
    >>> h = x.register_hook(lambda g: g * 10)
    >>> (x * 3).sum().backward()
    >>> x.grad
    tensor([30., 30.])
    >>> h.remove()
    """
    return register_hook(self, hook)


_tensor_register_hook.__name__ = "register_hook"
Tensor.register_hook = _tensor_register_hook
