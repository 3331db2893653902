"""The `pixelgate` group: each command imported when it runs, so that `pixelgate serve` starts
its model worker before the client commands' libraries are imported."""

from __future__ import annotations

import subprocess
import sys

import click

from pixelgate.cli.main import COMMANDS, main


def test_importing_the_command_group_imports_no_client_library() -> None:
    probe = (
        "import sys, pixelgate.cli.main; "
        "print(sorted(m for m in ('rich', 'httpx', 'pixelgate.sdk') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


def test_every_command_is_found_by_its_name() -> None:
    context = click.Context(main)

    names = main.list_commands(context)

    assert names == sorted([*COMMANDS, "serve"])
    for name in names:
        command = main.get_command(context, name)
        assert command is not None and command.name == name
