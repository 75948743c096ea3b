"""Client dialects. Each module is a codec over the canonical model; nothing more."""
