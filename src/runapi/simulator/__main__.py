"""``python -m runapi.simulator --host 127.0.0.1 --port 9100 [--ttft-ms ...]``"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .config import cli_options, config_from_options
from .server import run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m runapi.simulator", description="A faithful fake of MiniMax's OpenAI-compatible API."
    )
    for option in cli_options:
        if option.type is bool:
            parser.add_argument(option.flag, dest=option.field, action="store_true", help=option.help)
        else:
            parser.add_argument(
                option.flag, dest=option.field, type=option.type, default=option.default, help=option.help
            )
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = _parser()
    args = vars(parser.parse_args(argv))
    try:
        config = config_from_options(args)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        run(args["host"], args["port"], config)
    except OSError as exc:  # typically: the port is taken
        parser.exit(1, f"simulator: cannot listen on {args['host']}:{args['port']}: {exc}\n")


if __name__ == "__main__":
    main()
