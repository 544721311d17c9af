"""ember.autograd: gradients (`grad`, `backward`) and custom differentiable functions.

    import ember as em

    class Exp(em.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            y = x.exp()
            ctx.save_for_backward(y)
            return y

        @staticmethod
        def backward(ctx, g):
            y, = ctx.saved_tensors
            return g * y

This module only re-exports; the code lives in tracer/autograd.py (the engine) and
tracer/function.py (Function, ctx, hooks).
"""

from .tracer.autograd import backward  # noqa: F401
from .tracer.autograd import grad_of as grad  # noqa: F401
from .tracer.function import Function, FunctionCtx, RemovableHandle  # noqa: F401

__all__ = ["Function", "FunctionCtx", "RemovableHandle", "backward", "grad"]
