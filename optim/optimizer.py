"""The `Optimizer` base class: parameter groups, state, `step`, `zero_grad`, state dicts.

How a step runs. `step()` builds, for each parameter group, the new value of every
parameter and of every state tensor (momentum, running averages, step counts) as
ordinary ember operations under `no_grad`, writes them in place, and then realises
all of them with one `em.realize` call: the whole group's update is one graph, which
ember's compiler fuses and caches, so a step costs one program run per group.

Changing scalars never change that graph. Every float hyperparameter of a group
(learning rate, betas, eps, momentum, ...) lives in a small float64 vector the
group owns, shared with NumPy (`em.from_numpy`): the graph reads it like any input,
so a new learning rate is a new input value, not a new program. Assigning
`group["lr"] = v` (as a scheduler does) writes the vector at once, so a step
compiled with `em.compile` reads the current value too. Step counts are state
tensors (as in PyTorch) and the bias corrections that depend on them are computed
inside the graph, in float64, and rounded once to the parameter's dtype: the same
values PyTorch computes in Python.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from copy import deepcopy
from itertools import chain

import numpy as np

from ..runtime.context import current, switch
from ..tracer.compile import note_state, state_changed
from ..tracer.mode import no_grad

__all__ = ["Optimizer", "required"]


class _RequiredParameter:
    """Marks an option a parameter group must give (PyTorch's `required`)."""

    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


def _em():
    import ember
    return ember


def _noting(method):
    """`list`'s `method`, followed by `state_changed` (an edit that takes no new items)."""
    def edit(self, *args, **kwargs):
        out = method(self, *args, **kwargs)
        state_changed()
        return out
    edit.__name__ = edit.__qualname__ = method.__name__
    edit.__doc__ = method.__doc__
    return edit


class _Watched(list):
    """A list whose every edit tells compiled functions to check their state guards
    (`state_changed`): a group's `params`, an optimizer's `param_groups`.

    NOTE: a step compiled by `em.compile` updates the parameters it saw when it traced;
    its guard on them is checked only after `state_changed`. A list edited in place
    (`group["params"].append(p)`) would otherwise go unnoticed, and the new parameter
    would never be updated.
    """

    __slots__ = ()

    def _take(self, items, replacing=()) -> list:
        """The items as this list holds them, in place of `replacing` (`_Groups` binds
        plain dicts)."""
        return list(items)

    def append(self, item) -> None:
        super().append(self._take([item])[0])
        state_changed()

    def extend(self, items) -> None:
        super().extend(self._take(items))
        state_changed()

    def insert(self, index, item) -> None:
        super().insert(index, self._take([item])[0])
        state_changed()

    def __setitem__(self, index, value) -> None:
        if isinstance(index, slice):
            value = self._take(value, self[index])
        else:
            value = self._take([value], [self[index]])[0]
        super().__setitem__(index, value)
        state_changed()

    def __iadd__(self, items):
        self.extend(items)
        return self

    def __imul__(self, n):
        super().__imul__(n)
        state_changed()
        return self

    pop, remove, clear, sort, reverse, __delitem__ = (
        _noting(getattr(list, name)) for name in ("pop", "remove", "clear", "sort",
                                                  "reverse", "__delitem__"))

    def __reduce_ex__(self, protocol):
        return (list, (list(self),))


class _Groups(_Watched):
    """An optimizer's `param_groups`: a dict put in directly (`append`, an assignment)
    becomes a group as `add_param_group` makes one (defaults filled in, options bound,
    checked), and every edit makes compiled steps check their guards."""

    __slots__ = ("_owner",)

    def _take(self, items, replacing=()) -> list:
        kept = [g for g in self if not any(g is r for r in replacing)]
        taken = []
        for item in list(items):
            if not isinstance(item, _ParamGroup):
                owner = self._owner
                item = owner._make_group(item, kept + taken)
                owner._init_group_state(item)
            taken.append(item)
        return taken


class _ParamGroup(dict):
    """A parameter group: a dict (as in PyTorch) that also keeps its float options in a
    float64 vector the update graph reads, written whenever an option is assigned."""

    __slots__ = ("_slots", "_facts", "_array", "_tensor")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if type(self.get("params")) is list:
            super().__setitem__("params", _Watched(self["params"]))
        self._slots: tuple = ()
        self._facts: tuple = ()
        self._array = None
        self._tensor = None

    def __setitem__(self, key, value) -> None:
        if key == "params" and type(value) is list:
            value = _Watched(value)  # NOTE: an edit of the list is seen (see `_Watched`)
        if self._array is None:
            super().__setitem__(key, value)
            return
        if any(k == key for k, _ in self._slots):
            before = self._scalar_facts()
            super().__setitem__(key, value)
            self.sync()
            if self._scalar_facts() != before:
                state_changed()
        else:
            super().__setitem__(key, value)
            state_changed()

    def update(self, *args, **kwargs) -> None:
        super().update(*args, **kwargs)
        if self._array is not None:
            self.sync()
            state_changed()

    def bind(self, slots: tuple, facts: tuple = ()) -> None:
        """Hold the options `slots` ((key, index or None), ...) in a vector of its own;
        `facts` ((key, index, test), ...) are what the update branches on (`_scalar_facts`)."""
        self._slots = slots
        self._facts = facts
        self._array = np.zeros(len(slots), dtype=np.float64)
        self._tensor = _em().from_numpy(self._array)
        self.sync()

    def sync(self) -> None:
        """Copy the group's current option values into its vector."""
        for i, (key, index) in enumerate(self._slots):
            value = self[key] if index is None else self[key][index]
            self._array[i] = float(value)

    def traced_shape(self) -> tuple:
        """What an update traced over this group was built from besides tensors and the
        values of its float options: its parameters, every other option by value, and
        `_scalar_facts`. A compiled step is replayed only while they stay the same.

        NOTE: a step traced by `em.compile` took every Python branch of the update once
        (`if group["weight_decay"] != 0`, `group["nesterov"]`, `group["maximize"]`):
        a replay takes the same branches, so a changed option must trace it again.
        """
        slots = {k for k, _ in self._slots}
        return (tuple(map(id, self["params"])),
                tuple((k, v) for k, v in self.items() if k != "params" and k not in slots),
                self._scalar_facts())

    def _scalar_facts(self) -> tuple:
        """What the update branches on of its float options (the optimizer's
        `_branch_facts`: `is_zero(weight_decay)` leaves a term out, `near_one(beta1)`
        picks a formulation of `lerp`)."""
        return tuple(test(self[k] if i is None else self[k][i]) for k, i, test in self._facts)

    def scalar(self, key: str, index: int | None = None):
        """The option as a 0-d float64 tensor reading the group's vector."""
        return self._tensor[self._slots.index((key, index))]

    def __deepcopy__(self, memo):
        return {k: deepcopy(v, memo) for k, v in self.items()}

    def __reduce__(self):
        return (dict, (dict(self),))


def is_zero(value) -> bool:
    """Whether a float option is zero (an update leaves its term out)."""
    return float(value) == 0


def near_one(value) -> bool:
    """Whether a decay factor is within 0.5 of one (`adam.lerp`'s `small` form)."""
    return abs(1 - float(value)) < 0.5


def _traced_shape(opt: Optimizer) -> tuple:
    """What a step of `opt` traced by `em.compile` depends on besides tensors and the
    values of float options: whether an lr scheduler wraps `opt.step` (to mark
    `opt._opt_called` when it runs) and each group's `traced_shape()`."""
    return (hasattr(opt.step, "_wrapped_by_lr_sched"),
            tuple(group.traced_shape() for group in opt.param_groups))


def tracing() -> bool:
    """Whether `em.compile` is recording the calling thread's operations."""
    return current().trace is not None


class Scalars:
    """A step's scalars as 0-d (or per-parameter 1-d) tensors of each dtype, each built
    and cast once per group rather than once per parameter (fewer nodes to build)."""

    def __init__(self):
        self.cache: dict = {}

    def __call__(self, name: str, dtype, build):
        key = (name, dtype)
        value = self.cache.get(key)
        if value is None:
            value = self.cache[key] = build().to(dtype)
        return value


def advance_steps(steps: list):
    """Add 1 to each `step` state tensor; the new counts as one float64 vector.

    NOTE: PyTorch computes bias corrections from the step count in Python (double);
    here they are computed inside the step's program from this vector, in float64, once
    for all the group's parameters.
    """
    em = _em()
    for step in steps:
        step.add_(1)
    return em.stack(steps).to(em.float64)


def make_state(build) -> dict:
    """`build()` (a dict of new state tensors), made as if before the `em.compile` trace
    running now, if any.

    NOTE: state made lazily on the first step is then an input of the traced program
    (a captured tensor, updated in place and written back on every replay), not a value
    computed inside the trace and kept outside it: such a trace would be thrown away and
    its writes to the new state would leak into the uncompiled call that follows. While
    tracing, the new tensors are realised at once (zeros, fills).
    """
    ctx = current()
    if ctx.trace is None:
        return build()
    switch(trace=None)
    try:
        state = build()
        _em().realize(*[v for v in state.values() if isinstance(v, _em().Tensor)])
    finally:
        switch(trace=ctx.trace)
    return state


def _typename(x) -> str:
    """PyTorch's `torch.typename` in ember's words (a tensor is an `ember.Tensor`)."""
    if isinstance(x, _em().Tensor):
        return "ember.Tensor"
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


class Optimizer:
    r"""Base class for all optimizers.

    Args:
        params (iterable): an iterable of tensors or of dicts. Specifies what tensors
            should be optimized; dicts define parameter groups, each with its own options.
        defaults (dict): a dict containing default values of optimization options (used
            when a parameter group doesn't specify them).

    A subclass implements `_group_update(group)`: it writes the new values of the
    group's parameters and state in place (ember operations under `no_grad`) and
    returns the tensors it wrote; `step()` realises them as one program per group.
    """

    # (key, index or None) of the float options a group's update reads as inputs
    _scalar_slots: tuple = (("lr", None),)
    # (key, index or None, test) of the float options whose `test` the update branches on
    _branch_facts: tuple = ()

    def _init_state(self, p, group: dict) -> dict:
        """p's state, made on its first step by the subclass's `_new_state(p, group)`
        (outside any trace: see `make_state`)."""
        state = self.state[p]
        if not state:
            state.update(make_state(lambda: self._new_state(p, group)))
        return state

    def __init__(self, params, defaults: dict):
        em = _em()
        self.defaults = defaults
        if isinstance(params, em.Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            "Tensors or dicts, but got " + _typename(params))
        self.state: defaultdict = defaultdict(dict)
        self.param_groups = []
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for param_group in param_groups:
            self.add_param_group(param_group)

    def __getstate__(self) -> dict:
        return {"defaults": self.defaults, "state": self.state,
                "param_groups": self.param_groups}

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        groups = state.pop("param_groups")
        self.__dict__.update(state)
        self.param_groups = []
        for group in groups:  # NOTE: pickled as plain dicts
            group = _ParamGroup(group)
            group.bind(self._scalar_slots, self._branch_facts)
            list.append(self._param_groups, group)

    @property
    def param_groups(self) -> list:
        """The parameter groups (dicts of `params` and options). Edit them as in PyTorch:
        `add_param_group`, assigning an option, appending to a group's `params`, or
        putting a dict into the list directly (made a group as `add_param_group` makes
        one: its missing options take the defaults). A step compiled with `em.compile`
        sees every such change."""
        return self._param_groups

    @param_groups.setter
    def param_groups(self, groups) -> None:
        watched = _Groups()
        watched._owner = self
        list.extend(watched, watched._take(groups))
        self._param_groups = watched
        state_changed()

    def __repr__(self) -> str:
        format_string = self.__class__.__name__ + " ("
        for i, group in enumerate(self.param_groups):
            format_string += "\n"
            format_string += f"Parameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    format_string += f"    {key}: {group[key]}\n"
        format_string += ")"
        return format_string

    # -- parameter groups -------------------------------------------------------------

    def add_param_group(self, param_group: dict) -> None:
        """Add a param group to the optimizer's `param_groups`.

        This can be useful when fine tuning a pre-trained network as frozen layers can be
        made trainable and added to the optimizer as training progresses.

        Args:
            param_group (dict): Specifies what tensors should be optimized along with group
                specific optimization options.
        """
        group = self._make_group(param_group, self.param_groups)
        list.append(self.param_groups, group)
        self._init_group_state(group)
        state_changed()  # NOTE: a compiled step must trace again to update the new group

    def _make_group(self, param_group: dict, others: list) -> _ParamGroup:
        """`param_group` as a bound group, its missing options the defaults, checked as
        PyTorch checks a new group (against the groups `others`)."""
        em = _em()
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {_typename(param_group)}")
        group = _ParamGroup(param_group)
        params = group["params"]
        if isinstance(params, em.Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        else:
            params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        params = [p[1] if isinstance(p, tuple) else p for p in params]
        if names:
            if len(names) != len(params):
                raise ValueError("all optimizer params should be with/without names. Some "
                                 "param names are missing")
            group["param_names"] = names
        group["params"] = params
        for param in params:
            if not isinstance(param, em.Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params "
                                "is " + _typename(param))
            if not (param.is_leaf or param.retains_grad):
                raise ValueError("can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError("parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            group.setdefault(name, default)
        self._check_group(group)
        if len(params) != len({id(p) for p in params}):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; "
                          "in future, this will cause an error; see "
                          "github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=4)
        seen: set = set()
        for other in others:
            seen.update(id(p) for p in other["params"])
            if ("param_names" in group) != ("param_names" in other):
                which = "with names" if "param_names" in group else "without names"
                raise ValueError("all optimizer param groups should be with/without names. "
                                 f"cannot add param group {which} to the optimizer")
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group.bind(self._scalar_slots, self._branch_facts)
        return group

    def _check_group(self, group: dict) -> None:
        """Raise PyTorch's error for an invalid option of a group (subclasses)."""

    def _init_group_state(self, group: dict) -> None:
        """State made when a group is added (Adagrad's); most optimizers make it lazily."""

    # -- stepping ---------------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all optimized tensors.

        Args:
            set_to_none (bool): instead of setting to zero, set the grads to None (the
                default). A zero gradient and a None one differ: an optimizer skips a
                parameter whose gradient is None and steps one whose gradient is zero.
        """
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    # NOTE: in place, as PyTorch: whoever holds the gradient sees zeros
                    grad = p.grad
                    if grad.grad_fn is not None:
                        grad.detach_()
                    else:
                        grad.requires_grad_(False)
                    grad.zero_()

    def step(self, closure=None):
        """Perform a single optimization step (parameter update).

        Args:
            closure (Callable, optional): a closure that reevaluates the model and
                returns the loss (called with gradients enabled).

        Returns:
            the closure's loss, or None.
        """
        em = _em()
        # NOTE: a compiled replay skips this Python: the branches the update took on the
        # groups' options, and the wrapper an lr scheduler puts around `step` to note that
        # it ran (its check of the call order). A change of either traces it again.
        note_state(self, _traced_shape, f"optimizer {type(self).__name__}")
        loss = None
        if closure is not None:
            with em.enable_grad():
                loss = closure()
        for group in self.param_groups:
            group.sync()
            with no_grad():
                written = self._group_update(group)
            if written and not tracing():
                # NOTE: one realisation for the whole group: one fused program per group
                em.realize(*written)
        return loss

    def _group_update(self, group: dict) -> list:
        raise NotImplementedError

    @staticmethod
    def _params_with_grad(group: dict) -> list:
        """The group's parameters that have a gradient (the others are skipped)."""
        return [p for p in group["params"] if p.grad is not None]

    # -- state dicts ------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The optimizer's state as a dict, in PyTorch's layout.

        It contains two entries: ``state``, a dict from the integer index of each
        parameter (counting through the groups in order) to its state (tensors as
        they are: the state dict holds references, as PyTorch's does), and
        ``param_groups``, a list of the groups' options with ``params`` the lists of
        those indices.
        """
        index: dict = {}
        start = 0

        def pack(group):
            nonlocal start
            packed = {k: v for k, v in group.items() if k != "params"}
            index.update({id(p): i for i, p in enumerate(group["params"], start)
                          if id(p) not in index})
            packed["params"] = [index[id(p)] for p in group["params"]]
            start += len(packed["params"])
            return packed

        param_groups = [pack(g) for g in self.param_groups]
        by_id = {id(p): p for g in self.param_groups for p in g["params"]}
        state = {index[k]: v for k, v in ((id(p), s) for p, s in self.state.items())
                 if k in index and k in by_id}
        return {"state": state, "param_groups": param_groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load the optimizer state.

        Args:
            state_dict (dict): optimizer state; should be an object returned from a call
                to `state_dict()`. Its tensors are copied (cast to the dtype of their
                parameter where they are floating point, except ``step``).
        """
        em = _em()
        groups = self.param_groups
        saved_groups = deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        id_map = dict(zip(chain.from_iterable(g["params"] for g in saved_groups),
                          chain.from_iterable(g["params"] for g in groups)))

        def cast(param, value, key=None):
            if isinstance(value, em.Tensor):
                if key != "step" and value.is_floating_point():
                    value = value.to(param.dtype)
                return value.clone()
            if isinstance(value, dict):
                return {k: cast(param, v, k) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return type(value)(cast(param, v) for v in value)
            return value

        state: defaultdict = defaultdict(dict)
        for k, v in state_dict["state"].items():
            if k in id_map:
                param = id_map[k]
                state[param] = cast(param, v)
            else:
                state[k] = v
        new_groups = []
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            new = _ParamGroup(saved)
            new.bind(self._scalar_slots, self._branch_facts)
            new_groups.append(new)
        self.state = state
        self.param_groups = new_groups
        state_changed()  # NOTE: the groups' options may differ (see traced_shape)
