"""datakeep: versioned datasets for machine learning, compatible with Paperspace Gradient's Datasets."""

from datakeep.client import Client, connect
from datakeep.config import Settings

__all__ = ["Client", "Settings", "connect"]
__version__ = "0.1.0"
