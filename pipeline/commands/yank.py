from __future__ import annotations

from pathlib import Path

import click


@click.command(name="yank")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--reason", default="", help="Shown to users by pip when it still picks the file.")
@click.option(
    "--index",
    "root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Index root (default: the one holding FILE).",
)
@click.option("--undo", is_flag=True, help="Un-yank the file.")
@click.option("--json", "as_json", is_flag=True)
def command(file: Path, reason: str, root: Path | None, undo: bool, as_json: bool) -> None:
    """Yank a published file (PEP 592): pip skips it unless pinned exactly. The file itself stays.

    FILE is the file's path inside a static index, or its name with --index.
    """
    from pipeline.index.static import StaticIndex, find_index_root
    from pipeline.index.wheelinfo import PublishError
    from pipeline.output import emit_json

    index_root = root or find_index_root(file.resolve().parent)
    if index_root is None:
        raise PublishError(f"{file}: not inside a static index; pass --index ROOT")
    entry = StaticIndex(index_root).yank(file.name, reason, undo=undo)
    parent = index_root.resolve().parent
    if (parent / ".rewheel").is_dir() and (parent / "index.html").is_file():
        # A channel's file: the landing page at the root above it shows the channels too.
        StaticIndex(parent).refresh_landing([entry.project])
    if as_json:
        emit_json({"filename": entry.filename, "yanked": entry.yanked is not None, "reason": entry.yanked})
    else:
        click.echo(f"{entry.filename}: {'un-yanked' if undo else 'yanked'} in {index_root}")
