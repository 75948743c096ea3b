"""The words generated text is made of.

Every word is pure lowercase ASCII letters, so under the tokenization rule each word is exactly
one token and generated text can be re-counted with :func:`count_text_tokens`.
"""

from __future__ import annotations

__all__ = ["WORDS"]

WORDS: tuple[str, ...] = (
    "alpha", "amber", "anchor", "arrow", "autumn", "beacon", "birch", "breeze",
    "bridge", "canyon", "cedar", "cinder", "cliff", "cloud", "comet", "copper",
    "coral", "crane", "crystal", "dawn", "delta", "desert", "drift", "ember",
    "falcon", "fern", "field", "flint", "forest", "frost", "garden", "glacier",
    "granite", "harbor", "hazel", "horizon", "island", "ivory", "jasper", "lagoon",
    "lantern", "maple", "meadow", "meteor", "mist", "moss", "nectar", "oak",
    "ocean", "orbit", "pebble", "pine", "prairie", "quartz", "rain", "raven",
    "reef", "ridge", "river", "sage", "shadow", "signal", "slate", "spark",
    "spruce", "stone", "summit", "thunder", "tide", "timber", "valley", "willow",
)  # fmt: skip
