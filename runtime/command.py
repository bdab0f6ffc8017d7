"""The shape of a sub-command: what ``digitvae``'s parser needs of it.

Sub-commands (the runtime's own, and ``train``, ``export``, ``data``, ``bench`` through the
``digitvae.commands`` entry-point group) import this small module, never :mod:`.cli`, so
that the command line has no import circle.
"""

from __future__ import annotations

import argparse
from typing import Callable, NamedTuple


class Command(NamedTuple):
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
