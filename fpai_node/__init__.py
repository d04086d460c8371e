"""fpai-node: the reference node of the FPAI Protocol."""

__version__ = "0.1.0"
