"""How requests reach the pipeline: the `Exchange` seam, aiohttp's adapter and the lean server."""
