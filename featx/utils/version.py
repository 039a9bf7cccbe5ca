"""featx's version (read by setuptools for the package metadata)."""

__version__ = "0.1.0"
