"""How long and how hard each section runs: the full profile and `--quick`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

MODEL = "MiniMax-M2.7"

# (a), (b), (d), (e): a short non-streaming answer (the simulator's default: 8 reasoning + 16 content
# tokens), the shape most gateway traffic has.
CHAT_BODY = json.dumps(
    {
        "model": MODEL,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Write one line about the sea."}],
    },
    separators=(",", ":"),
)
# (c): 50 tokens at 10 ms each (100 tokens/s), no reasoning: an ideal stream takes 0.49 s.
STREAM_TOKENS = 50
STREAM_TPS = 100
STREAM_BODY = json.dumps(
    {
        "model": MODEL,
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {
                "role": "user",
                "content": f"Write about the sea.\n@sim tokens={STREAM_TOKENS} tps={STREAM_TPS} reasoning=0",
            }
        ],
    },
    separators=(",", ":"),
)
IDEAL_STREAM_S = STREAM_TOKENS / STREAM_TPS


@dataclass(frozen=True)
class Profile:
    name: str
    wrk_warmup_s: float
    wrk_duration_s: float
    wrk_connections: int
    wrk_threads: int
    latency_rates: tuple[int, ...]
    latency_seconds: float  # each rate sends rate x seconds requests
    latency_warmup: int
    latency_timeout_s: float
    stream_ks: tuple[int, ...]
    stream_timeout_s: float
    memory_total: int
    memory_step: int

    def latency_count(self, rate: int) -> int:
        return max(50, int(rate * self.latency_seconds))

    def as_json(self) -> dict[str, object]:
        return asdict(self)


FULL = Profile(
    name="full",
    wrk_warmup_s=2,
    wrk_duration_s=10,
    wrk_connections=64,
    wrk_threads=2,
    latency_rates=(50, 200),
    latency_seconds=10,
    latency_warmup=100,
    latency_timeout_s=30,
    stream_ks=(100, 1000, 5000),
    stream_timeout_s=60,
    memory_total=100_000,
    memory_step=10_000,
)

QUICK = Profile(
    name="quick",
    wrk_warmup_s=1,
    wrk_duration_s=3,
    wrk_connections=64,
    wrk_threads=2,
    latency_rates=(50, 200),
    latency_seconds=3,
    latency_warmup=30,
    latency_timeout_s=15,
    stream_ks=(100, 1000),
    stream_timeout_s=30,
    memory_total=20_000,
    memory_step=10_000,
)
