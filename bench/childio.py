"""How a load-client subprocess talks to the runner: one line per message on stdout.

    progress <done>      how many units (requests, streams) are finished so far
    result <json>        the final figures, last line

The clients run in their own processes so that the runner's progress display never steals the
event loop (or the GIL) from the client whose latency is being measured.
"""

from __future__ import annotations

import json
import resource
import sys
from typing import Any


def report_progress(done: int) -> None:
    sys.stdout.write(f"progress {done}\n")
    sys.stdout.flush()


def report_result(result: dict[str, Any]) -> None:
    sys.stdout.write("result " + json.dumps(result) + "\n")
    sys.stdout.flush()


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (thousands of sockets); return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1_048_576
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
