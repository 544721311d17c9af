"""ember's runtime: buffers, the reference interpreter, and running graphs.

Owns devices and buffers, the reference interpreter (the oracle and the engine
of eager mode), and `run`, the one entry point that turns a list of output nodes
into arrays. Depends on ir/ (and later codegen/); never on tracer/.
"""

from .buffers import Buffer, realized
from .config import options
from .execute import counts, run

__all__ = ["Buffer", "counts", "realized", "options", "run"]
