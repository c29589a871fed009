"""daemon1521: the 1521 electricity bill-payment line, answered by voice modems."""

__version__ = "0.1.0"
