"""The CLI's command map: ``kiln NAME`` loads the one module that registers NAME."""

from __future__ import annotations

import kiln.cli


def test_every_command_is_mapped_to_the_module_that_registers_it():
    app = kiln.cli.app  # every command module loaded
    registered = {}
    for command in app.registered_commands:
        assert command.callback is not None
        name = command.name or command.callback.__name__.replace("_", "-")
        registered[name] = command.callback.__module__
    for group in app.registered_groups:
        assert group.typer_instance is not None
        first = group.typer_instance.registered_commands[0].callback
        assert group.name is not None and first is not None
        registered[group.name] = first.__module__
    assert registered == kiln.cli.COMMANDS

