"""ember.optim: optimizers with PyTorch's names, options and update formulas."""

from . import lr_scheduler  # noqa: F401

__all__ = ["lr_scheduler"]
