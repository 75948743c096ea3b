"""`runapi serve --workers N`: the process that holds the port while N workers serve it.

`runapi serve` binds the socket, then replaces itself (exec) with this module, handing over the
socket and its settings as inherited file descriptors. The supervisor imports nothing of the
gateway: forked before any of it is loaded, each worker builds its own, and the supervisor stays
a few MB instead of carrying the CLI's, the database drivers' and the migrations' heap (90 MB
when the workers were forked from the CLI process).

A worker that dies is replaced, unless it dies within `_STARTUP_SECONDS` of its start: a gateway
that cannot start (no database, a bad config) stops the whole service with an error instead of
restarting in a loop. SIGTERM and SIGINT are passed on to the workers, which finish what they
serve and exit; the supervisor exits when they all have.

Run only by `runapi.cli.serve`: `python -m runapi.cli.supervisor SOCKET_FD SETTINGS_FD N [ANNOUNCE]`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time

_STARTUP_SECONDS = 10.0


def _worker(sock_fd: int, settings_fd: int, announce: str | None) -> None:
    """In the forked child: load the settings the CLI resolved, and serve."""
    import msgspec

    from runapi.cli.serve import serve_on
    from runapi.settings import Settings

    data = os.pread(settings_fd, os.fstat(settings_fd).st_size, 0)
    os.close(settings_fd)
    settings = msgspec.msgpack.decode(data, type=Settings)
    serve_on(socket.socket(fileno=sock_fd), settings, announce)


class Supervisor:
    def __init__(self, sock_fd: int, settings_fd: int, workers: int, announce: str | None) -> None:
        self.sock_fd, self.settings_fd = sock_fd, settings_fd
        self.workers = workers
        self.announce = announce
        self.started: dict[int, float] = {}  # pid → monotonic start
        self.stopping = False
        self.failed = False

    def spawn(self, announce: str | None) -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                _worker(self.sock_fd, self.settings_fd, announce)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
        self.started[pid] = time.monotonic()

    def stop(self, *_: object) -> None:
        self.stopping = True
        for pid in self.started:
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.kill(pid, signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        for i in range(self.workers):
            self.spawn(self.announce if i == 0 else None)
        while self.started:
            pid, status = os.wait()
            began = self.started.pop(pid, None)
            if began is None or self.stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            if time.monotonic() - began < _STARTUP_SECONDS:
                _say(f"worker {pid} exited ({code}) while starting; stopping")
                self.failed = True
                self.stop()
                continue
            _say(f"worker {pid} exited ({code}); starting another")
            self.spawn(None)
        return 1 if self.failed else 0


def _say(message: str) -> None:
    print(f"runapi: {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    sock_fd, settings_fd, workers = int(argv[0]), int(argv[1]), int(argv[2])
    announce = argv[3] if len(argv) > 3 else None
    return Supervisor(sock_fd, settings_fd, workers, announce).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
