"""The model catalog: models, prices, aliases and upstream routes, as data."""

from runapi.catalog.loader import Catalog, InputTier, ModelEntry, Prices, load_catalog

__all__ = ["Catalog", "InputTier", "ModelEntry", "Prices", "load_catalog"]
