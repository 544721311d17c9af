"""ember: lazy tensors with a compiler behind them, in PyTorch's words.

    import ember as em
    x = em.tensor([2.0, 3.0], requires_grad=True)
    y = (x ** 2).sum()
    y.backward()
    print(x.grad)        # tensor([4., 6.])

This module only re-exports the public API; see README.md and the folders
tracer/, ir/, codegen/, runtime/ for how it works.
"""

from types import SimpleNamespace as _NS

from .ir.dtypes import (  # noqa: F401
    DType as dtype,
)
from .ir.dtypes import (  # noqa: F401
    bfloat16,
    float16,
    float32,
    float64,
    int8,
    int16,
    int32,
    int64,
    promote_types,
    set_default_dtype,
    uint8,
)
from .ir.dtypes import bool_ as bool  # noqa: A001
from .ir.dtypes import default_float as get_default_dtype  # noqa: F401
from .runtime.devices import synchronize as _cuda_synchronize
from .tracer import *  # noqa: F401,F403
from .tracer import __all__ as _tracer_all
from .tracer.device import cuda_available as _cuda_available
from .tracer.device import device_count as _cuda_device_count
from .tracer.dlpack import from_dlpack
from .tracer.info import (  # noqa: F401
    finfo,
    get_default_device,
    iinfo,
    is_floating_point,
    is_tensor,
    set_default_device,
)
from .tracer.random import (  # noqa: F401
    Generator,
    bernoulli,
    get_rng_state,
    multinomial,
    normal,
    randperm,
    set_rng_state,
)
from .tracer.random import with_generator as _with_generator

float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001
short = int16

cuda = _NS(is_available=_cuda_available, device_count=_cuda_device_count,
           synchronize=_cuda_synchronize)

__version__ = "0.1.0"

# NOTE: the tracer's helpers that other modules of ember share (grad_of, laid_out,
# memory_order) are importable from their modules, never from `ember`.
_INTERNAL = {"grad_of", "laid_out", "memory_order"}
for _name in _INTERNAL:
    globals().pop(_name, None)
__all__ = [n for n in _tracer_all if n not in _INTERNAL] + [
    "dtype", "bfloat16", "float16", "float32", "float64", "int8", "int16", "int32", "int64",
    "uint8", "bool", "float", "double", "half", "long", "int", "short", "get_default_dtype",
    "set_default_dtype", "promote_types", "cuda", "autograd", "__version__",
]
# NOTE: the tracer's samplers take `generator=` here (tracer/random.py)
rand = _with_generator(rand)  # noqa: F405
randn = _with_generator(randn)  # noqa: F405
randint = _with_generator(randint)  # noqa: F405
rand_like = _with_generator(rand_like)  # noqa: F405
randn_like = _with_generator(randn_like)  # noqa: F405
randint_like = _with_generator(randint_like)  # noqa: F405
__all__ += ["Generator", "randperm", "normal", "bernoulli", "multinomial", "get_rng_state",
            "set_rng_state"]
__all__ += ["save", "load", "from_dlpack", "finfo", "iinfo", "is_tensor", "is_floating_point",
            "set_default_device", "get_default_device"]

from . import autograd, nn, optim  # noqa: E402,F401  (as torch.autograd, torch.nn, torch.optim)
from .serialization import load, save  # noqa: E402  (after nn: it knows nn.Parameter)
