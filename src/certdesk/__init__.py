"""certdesk: the whole life of personal certificates kept on USB tokens."""

__version__ = "0.1.0"
