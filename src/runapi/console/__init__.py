"""The web console: sign in with an API key, see balance, spend and usage plots, tasks, the model
catalog and limits; the operator (admin key) sees every account. Server-rendered pages with inline
SVG charts; nothing is fetched from another origin."""

from runapi.console.routes import routes

__all__ = ["routes"]
