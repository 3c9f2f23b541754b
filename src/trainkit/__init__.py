"""trainkit: synthetic linked administrative data on children in England, for training."""

__version__ = "0.1.0"

__all__ = ["__version__"]
