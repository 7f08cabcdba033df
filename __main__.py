"""``avala-mock`` and ``python -m avala_mock``: one command group composed from the server's commands and
the harness's, each imported only when it runs (or when ``--help`` lists it).

The composition lives here, above both layers, so the server package never imports the harness.
"""

from __future__ import annotations

import importlib

import click

# command name -> "module:attribute"; modules hold click commands and import their heavy parts lazily
COMMANDS = {
    "serve": "avala_mock.mock_server.cli:serve",
    "snapshot": "avala_mock.mock_server.cli:snapshot",
    "contract": "avala_mock.contracts.cli:contract",
    "verify-client": "avala_mock.contracts.cli:verify_client_cmd",
    "load": "avala_mock.load.cli:load",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's documented lazy-loading pattern)."""

    def __init__(self, *args, lazy: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            module, _, attr = self.lazy[name].partition(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="avala-mock", prog_name="avala-mock")
def main() -> None:
    """avala-mock: an offline, stateful simulator of the Avala API, and a contract harness for any server."""


if __name__ == "__main__":
    main(prog_name="avala-mock")
