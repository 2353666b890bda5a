"""The `rewheel` command line.

Each subcommand lives in its own module under pipeline/commands/ and exposes a click command named
`command`; the group discovers them, so adding a command touches nothing here. Command modules import
their stage lazily (inside the function) so `rewheel verify` does not pay for pydantic or cibuildwheel.

Errors: a RewheelError becomes one line on stderr and its exit code (2 for unusable input); a click usage
error exits 2 as well, and so do the three failures only hostile input causes wherever it is read (a path
the file system refuses as too long, nesting deep enough to exhaust recursion, JSON that does not parse).
Only a bug in rewheel shows a traceback.
"""

from __future__ import annotations

import errno
import importlib
import json
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
    from pipeline.log import log

    log.configure()  # each command starts from the default (tests run several in one process); --json may mute it
    try:
        with log.command():
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
    except OSError as exc:
        # A path the kernel refuses for its length is the user's input, wherever it is first opened
        # (every command takes paths and names that become paths): one line, not a traceback.
        if exc.errno != errno.ENAMETOOLONG:
            raise
        shown = str(exc.filename or "")
        shown = shown if len(shown) <= 80 else f"{shown[:60]}... ({len(shown)} characters)"
        click.echo(f"rewheel: error: a path or name is too long for the file system: {shown}", err=True)
        sys.exit(EXIT_USAGE)
    except RecursionError:
        # Only input nests deeply enough for this (JSON pages, TOML files): rewheel's own data never does.
        click.echo("rewheel: error: the input is nested too deeply to read", err=True)
        sys.exit(EXIT_USAGE)
    except json.JSONDecodeError as exc:
        click.echo(f"rewheel: error: a JSON document does not parse: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(code if isinstance(code, int) else 0)
