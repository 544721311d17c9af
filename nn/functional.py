"""ember.nn.functional: the stateless forms of the layers, in PyTorch's words.

Each function is composed from ember's primitive operations, so autograd and the
fusion pass see through it.
"""

from .activation_functional import (  # noqa: F401
    elu,
    gelu,
    hardsigmoid,
    hardtanh,
    leaky_relu,
    log_softmax,
    logsigmoid,
    mish,
    relu,
    relu6,
    sigmoid,
    silu,
    softmax,
    softplus,
    softsign,
    tanh,
)
from .attention_functional import scaled_dot_product_attention  # noqa: F401
from .layer_functional import (  # noqa: F401
    batch_norm,
    bilinear,
    dropout,
    embedding,
    layer_norm,
    linear,
    normalize,
    one_hot,
)
from .loss_functional import (  # noqa: F401
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)

# NOTE: the spatial operations live in spatial.py (one import block, kept apart)
from .spatial import (  # noqa: F401
    adaptive_avg_pool2d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose2d,
    interpolate,
    max_pool2d,
    pad,
)

# NOTE: every public name imported above (and by any import line added later) is public
__all__ = sorted(n for n in dir() if not n.startswith("_") and n not in ("annotations",))
