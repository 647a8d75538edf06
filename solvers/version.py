"""The pdeop version, written into every dataset file and checkpoint."""

__version__ = "0.1.0"
