"""tunelab: should I fine-tune, prompt, or retrieve? Measured on your task, with error bars."""

__version__ = "0.1.0"


class TunelabError(Exception):
    """An error the user can fix; the CLI prints it as one line and exits non-zero."""
