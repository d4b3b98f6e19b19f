"""The installed version of builder."""

__version__ = "0.1.0"
