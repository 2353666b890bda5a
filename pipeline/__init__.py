"""rewheel: rebuild, repair, verify and publish wheels for targets upstream wheels serve badly."""

__version__ = "0.1.0"
