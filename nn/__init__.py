"""ember.nn: modules, layers, losses and initialisers, in PyTorch's words.

    import ember as em
    from ember import nn
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

Every layer is composed from ember's primitive operations (nn.functional), so
autograd and fusion see through it.
"""

from . import functional, init, utils  # noqa: F401
from .activation import (  # noqa: F401
    ELU,
    GELU,
    Hardsigmoid,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
)
from .attention import MultiheadAttention  # noqa: F401
from .container import ModuleDict, ModuleList, Sequential  # noqa: F401
from .conv import Conv1d, Conv2d, ConvTranspose2d  # noqa: F401
from .dropout import Dropout  # noqa: F401
from .linear import Bilinear, Flatten, Identity, Linear, Unflatten  # noqa: F401
from .loss import (  # noqa: F401
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from .module import Module  # noqa: F401
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm  # noqa: F401
from .param_containers import ParameterDict, ParameterList  # noqa: F401
from .parameter import Parameter  # noqa: F401
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d  # noqa: F401
from .sparse import Embedding  # noqa: F401

_SUBMODULES = {"param_containers",
               "activation", "activation_functional", "attention", "attention_functional",
               "container", "dropout", "layer_functional", "linear", "loss", "loss_functional",
               "module", "normalization", "parameter", "sparse"}
_SUBMODULES |= {"conv", "pooling", "spatial"}
# NOTE: every public name imported above (and by any import line added later) is public
__all__ = sorted(n for n in dir() if not n.startswith("_") and n not in _SUBMODULES)
