"""trainkit: synthetic linked administrative data on children in England, for training.

The names a notebook needs::

    from trainkit import read_truth, read_manifest, calibrate, generate, make_config
"""

__version__ = "0.1.0"

from .calibrate import calibrate  # noqa: E402
from .config import Config, make_config  # noqa: E402
from .simulate.engine import generate  # noqa: E402
from .truth import read_manifest, read_truth  # noqa: E402

__all__ = [
    "Config",
    "__version__",
    "calibrate",
    "generate",
    "make_config",
    "read_manifest",
    "read_truth",
]
