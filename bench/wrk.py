"""wrk, the saturation load generator: a Lua script that posts one chat body, and its summary.

The script's `done()` prints one `WRKJSON {...}` line, so nothing depends on wrk's text layout.
With a request limit the script also counts responses per thread and stops the thread at its
share (wrk itself only knows durations), so a run is bounded by count and by time.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.stats import split_evenly

INSTALL_HINT = "wrk is missing: install it with `apt-get install -y wrk` (Debian package), then re-run."

_DONE_FN = """
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""

# wrk runs one Lua state per thread, so `init` receives that thread's own share of the limit. A
# stopped thread does not end wrk (it sleeps out its duration); the runner sends SIGINT once every
# thread has printed WRKDONE, and wrk then prints its summary as usual.
_LIMIT_FNS = """
local limit = 0
local seen = 0
local thread_index = 0
local shares = {%s}
function setup(thread)
  thread_index = thread_index + 1
  thread:set("share", shares[thread_index])
end
function init(args)
  limit = share or 0
end
function response(status, headers, body)
  seen = seen + 1
  if seen == limit then
    -- Tell the runner this thread is through (it then ends wrk with SIGINT), and stop sending.
    io.write("WRKDONE\\n")
    io.stdout:flush()
    wrk.thread:stop()
  end
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    socket_errors: int
    non2xx: int
    timeouts: int
    latency_ms: dict[str, float]

    def as_json(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "duration_s": self.duration_s,
            "rps": self.rps,
            "socket_errors": self.socket_errors,
            "non2xx": self.non2xx,
            "timeouts": self.timeouts,
            "latency_ms": self.latency_ms,
        }


def wrk_path() -> str | None:
    return shutil.which("wrk")


def _lua_string(text: str) -> str:
    level = "=" * 3
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def write_script(path: Path, body: str, key: str, limit: int = 0, threads: int = 1) -> Path:
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {_lua_string(body)}",
        'wrk.headers["Content-Type"] = "application/json"',
        f'wrk.headers["Authorization"] = {_lua_string("Bearer " + key)}',
    ]
    script = "\n".join(lines) + "\n" + _DONE_FN
    if limit > 0:
        shares = ", ".join(str(n) for n in split_evenly(limit, threads))
        script += _LIMIT_FNS % shares
    path.write_text(script)
    return path


def command(url: str, script: Path, duration_s: float, connections: int, threads: int) -> list[str]:
    binary = wrk_path() or "wrk"
    return [
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]


def parse_output(stdout: str) -> WrkResult:
    """The WRKJSON line, plus the 'Non-2xx or 3xx responses' count wrk prints itself."""
    data: dict[str, int] | None = None
    non2xx = 0
    for line in stdout.splitlines():
        if line.startswith("WRKJSON "):
            data = json.loads(line[len("WRKJSON ") :])
        elif "Non-2xx or 3xx responses:" in line:
            non2xx = int(line.rsplit(":", 1)[1])
    if data is None:
        raise ValueError(f"no WRKJSON line in wrk output:\n{stdout[-2000:]}")
    duration = data["duration_us"] / 1_000_000
    requests = data["requests"]
    return WrkResult(
        requests=requests,
        duration_s=duration,
        rps=requests / duration if duration > 0 else 0.0,
        socket_errors=data["connect"] + data["read"] + data["write"],
        non2xx=max(non2xx, data["status"]),
        timeouts=data["timeout"],
        latency_ms={
            "p50": data["p50_us"] / 1000,
            "p90": data["p90_us"] / 1000,
            "p99": data["p99_us"] / 1000,
            "max": data["max_us"] / 1000,
        },
    )
