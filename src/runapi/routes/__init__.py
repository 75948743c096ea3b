"""HTTP routes of the client surfaces (floor 5: they join surfaces, pipeline and services)."""
