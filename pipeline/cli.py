"""The `rewheel` command line.

Each subcommand lives in its own module under pipeline/commands/ and exposes a click command named
`command`; the group discovers them, so adding a command touches nothing here. Command modules import
their stage lazily (inside the function) so `rewheel verify` does not pay for pydantic or cibuildwheel.

Errors: a RewheelError becomes one line on stderr and its exit code (2 for unusable input); a click usage
error exits 2 as well. Only a bug in rewheel shows a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from pipeline import __version__
from pipeline.errors import EXIT_USAGE, RewheelError


class DiscoveredCommands(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        import pipeline.commands as package

        return sorted(
            m.name.replace("_", "-")
            for m in pkgutil.iter_modules(package.__path__)
            if not m.name.startswith("_")
        )

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.list_commands(ctx):
            return None
        module = importlib.import_module(f"pipeline.commands.{cmd_name.replace('-', '_')}")
        command: click.Command = module.command
        return command


@click.group(cls=DiscoveredCommands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rewheel")
def cli() -> None:
    """rewheel: rebuild, repair, verify and publish wheels for musllinux, arm64 and reduced Windows.

    Exit codes shared by every command: 0 success, 1 findings or failed jobs, 2 unusable input
    (bad recipe, bad archive, hash mismatch, unknown target), 3 target cannot be hosted here (smoke).
    """


def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="rewheel", standalone_mode=False)
    except RewheelError as exc:
        click.echo(f"rewheel: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("rewheel: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except KeyboardInterrupt:
        click.echo("rewheel: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
