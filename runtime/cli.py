"""``digitvae``: the one console script. Runtime sub-commands live in :mod:`.commands`;
``train``, ``export``, ``data`` and ``bench`` register through the ``digitvae.commands`` entry-point group, so the runtime
never imports training code (or torch) unless one of them is asked for."""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import entry_points
from typing import Sequence

from .command import Command
from .errors import DigitVAEError
from .optional import MissingDependency


def _runtime_commands() -> dict[str, Command]:
    from . import commands  # the runtime's own sub-commands

    return commands.COMMANDS


def _plugin_commands() -> dict[str, Command]:
    found = {}
    for ep in entry_points(group="digitvae.commands"):
        try:
            found[ep.name] = ep.load()
        except ImportError as exc:  # a broken install must not take the other commands down
            found[ep.name] = _unavailable(ep.name, exc)
    return found


def _unavailable(name: str, exc: ImportError) -> Command:
    def run(_: argparse.Namespace) -> int:
        raise DigitVAEError(f"the '{name}' command cannot be loaded ({exc}): reinstall digitvae")

    return Command(help=f"(unavailable: {exc})", add_arguments=lambda p: None, run=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="digitvae",
        description="Handwritten digits: read, reconstruct, generate and restyle them with a VAE on onnxruntime.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands = {**_plugin_commands(), **_runtime_commands()}
    for name in sorted(commands):
        command = commands[name]
        p = sub.add_parser(name, help=command.help, description=command.help,
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (DigitVAEError, MissingDependency) as exc:
        print(f"digitvae {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"digitvae {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of the output left (``digitvae classify ... | head``): nothing to say.
        # Point stdout at devnull so that Python's own flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a command killed by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
