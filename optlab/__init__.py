"""optlab: compare neural-network training configurations side by side."""

__version__ = "0.1.0"
