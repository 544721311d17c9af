"""ember.optim: optimizers with PyTorch's names, options and update formulas.

Each optimizer's `step()` is one fused program per parameter group, and the scalars that
change from step to step (learning rate, bias corrections, step count) are inputs of
that program, never part of its cache key: see optimizer.py.
"""

from . import lr_scheduler  # noqa: F401
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
