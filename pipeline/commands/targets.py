from __future__ import annotations

import click


@click.command(name="targets")
@click.option("--json", "as_json", is_flag=True, help="Print the catalogue as JSON.")
def command(as_json: bool) -> None:
    """List the target catalogue: names, wheel tags, runtime profiles, cibuildwheel identifiers and images.

    Linux targets are every manylinux/musllinux level and arch of auditwheel's installed policies; a level
    without a cibuildwheel image ("verify only") can be checked against but not built with cibuildwheel.
    A musl target is its tag plus a musl runtime profile: the plain name stands for every supported Alpine
    release, NAME-musl1.2.3 for the older musl 1.2.3. `--json` adds what each target stands for
    (docs/targets.md)."""
    from pipeline.builders.backends.cibuildwheel_ids import cibw_identifier, cibw_image, target_json
    from pipeline.output import emit_json, table
    from pipeline.targets import catalogue

    targets = list(catalogue().values())
    if as_json:
        emit_json({"targets": [target_json(t) for t in targets]})
        return
    rows = [
        (
            t.name,
            t.platform_tag,
            t.arch,
            f"musl {t.musl_version}" if t.musl_version else (t.libc or t.edition or ""),
            t.profile,
            f"cpXY-{cibw_identifier(t)}",
            cibw_image(t) or ("" if not t.is_linux else "verify only"),
        )
        for t in targets
    ]
    headers = ["target", "platform tag", "arch", "libc/edition", "profile", "cibuildwheel id", "image"]
    click.echo(table(rows, headers))
