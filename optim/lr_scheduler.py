"""ember.optim.lr_scheduler: learning-rate schedules in PyTorch's words."""

__all__: list = []
