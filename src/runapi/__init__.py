"""runapi: a self-hostable LLM API gateway."""

__version__ = "0.1.0"
