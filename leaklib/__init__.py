"""leaklib: the I/O and logic behind the leak-detection notebooks."""

__version__ = "0.1.0"
