"""The runtime's sub-commands: what works with the base install (plus [camera] for images)."""

from __future__ import annotations

from . import data_cli
from .cli import Command

COMMANDS: dict[str, Command] = {
    "data": data_cli.COMMAND,
}
