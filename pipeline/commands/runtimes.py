"""`rewheel runtimes list|build`: the target runtimes this machine builds and hosts (generic over the registry)."""

from __future__ import annotations

import re

import click

# What `rewheel runtimes build` builds with no names: every interpreter runtime smoke needs for Linux targets.
DEFAULT_BUILDS = ("musl-cpython-", "debian-arm64-", "debian-armhf-")


def _describe(runtime: object) -> dict[str, object]:
    from pipeline.runtimes._support import tree_size

    name = getattr(runtime, "name", "?")
    exists = bool(runtime.exists())  # type: ignore[attr-defined]
    root = runtime.root()  # type: ignore[attr-defined]
    item: dict[str, object] = {
        "name": name,
        "description": getattr(runtime, "description", ""),
        "targets": list(getattr(runtime, "targets", ())),
        "exists": exists,
        "root": str(root),
        "size_bytes": tree_size(root) if exists and root.is_dir() and not name.startswith("host-") else None,
        "unavailable_reason": runtime.unavailable_reason(),  # type: ignore[attr-defined]
        "python_version": getattr(runtime, "python_version", None),
        "arch": getattr(runtime, "arch", None),
        "libc": getattr(runtime, "libc", None),
        "provenance": getattr(runtime, "provenance", None),
        # What smoke can import on it: each target x the interpreter's Python ("musllinux_1_2_aarch64 cp313").
        "hosts": _hosts(runtime),
    }
    if exists and hasattr(runtime, "python"):
        item["python"] = str(runtime.python())
    return item


def _hosts(runtime: object) -> list[str]:
    version = getattr(runtime, "python_version", None)
    targets = list(getattr(runtime, "targets", ()))
    if version is None or not hasattr(runtime, "python"):
        return targets  # an image builds for its targets; it imports nothing itself
    tag = "cp" + str(version).replace(".", "")
    return [f"{target} {tag}" for target in targets]


def _compact_hosts(hosts: list[str]) -> str:
    """The hosts column for people: a host CPython hosts every manylinux policy up to the host's glibc, so a run
    of policies of one family and arch prints as its range ("manylinux_2_5..2_36_x86_64 cp311"); --json keeps
    the full list."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    order: list[tuple[str, str, str] | str] = []
    for host in hosts:
        match = _POLICY.fullmatch(host)
        if not match:
            order.append(host)
            continue
        key = (match["family"], match["arch"], match["python"] or "")
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(match["level"])
    parts = []
    for item in order:
        if isinstance(item, str):
            parts.append(item)
            continue
        family, arch, python = item
        levels = groups[item]
        suffix = f" {python}" if python else ""
        if len(levels) < 3:
            parts.extend(f"{family}_{level}_{arch}{suffix}" for level in levels)
        else:
            parts.append(f"{family}_{levels[0]}..{levels[-1]}_{arch}{suffix}")
    return ", ".join(parts) or "-"


_POLICY = re.compile(
    r"(?P<family>manylinux|musllinux)_(?P<level>\d+_\d+)_(?P<arch>[a-z0-9_]+?)(?: (?P<python>\S+))?"
)


@click.group(name="runtimes")
def command() -> None:
    """Target runtimes: musl CPythons built here, Debian's arm64 CPython under qemu-user, host CPythons,
    local podman images. Everything built is cached under <cache>/runtimes/ and reused."""


@command.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def list_command(as_json: bool) -> None:
    """What runtimes exist, where, how big, and what they host (target x Python), or why they cannot be built."""
    from pipeline.output import emit_json, human_size, table
    from pipeline.runtimes import all_runtimes

    items = [_describe(r) for r in all_runtimes().values()]
    if as_json:
        emit_json({"runtimes": items})
        return
    rows = []
    for item in items:
        size = item["size_bytes"]
        state = (
            "ready"
            if item["exists"]
            else (
                "cannot build: " + str(item["unavailable_reason"])
                if item["unavailable_reason"]
                else "not built"
            )
        )
        rows.append(
            (
                item["name"],
                state,
                human_size(size) if isinstance(size, int) else "",
                _compact_hosts(item["hosts"]),  # type: ignore[arg-type]
                item.get("python") or item["root"],
            )
        )
    click.echo(table(rows, ["runtime", "state", "size", "hosts", "where"]))


@command.command(name="build")
@click.argument("names", nargs=-1)
@click.option("--all", "build_all", is_flag=True, help="Build every runtime this machine can build.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def build_command(names: tuple[str, ...], build_all: bool, as_json: bool) -> None:
    """Build runtimes by NAME (default: the musl CPythons and the Debian arm64 roots). Finished builds are
    reused."""
    import time

    from pipeline.log import log
    from pipeline.output import emit_json
    from pipeline.runtimes import all_runtimes, get_runtime
    from pipeline.runtimes._support import waited_for_another_build
    from pipeline.runtimes.sources import imported_from_source

    if names:
        selected = [get_runtime(n) for n in names]
    elif build_all:
        selected = [r for r in all_runtimes().values() if r.unavailable_reason() is None]
    else:
        selected = [r for name, r in all_runtimes().items() if name.startswith(DEFAULT_BUILDS)]
    results = []
    for runtime in selected:
        started = time.monotonic()
        was_built = runtime.exists()
        if not was_built:
            reason = runtime.unavailable_reason()
            if reason:
                from pipeline.errors import MissingTool

                raise MissingTool(f"{runtime.name} cannot be built here: {reason}")
            log.say(f"runtimes: building {runtime.name}")
        runtime.build()
        seconds = round(time.monotonic() - started, 1)
        results.append(
            {
                **_describe(runtime),
                "reused": was_built,
                "built_by_another_process": not was_built and waited_for_another_build(runtime.name),
                "imported_from_source": imported_from_source(runtime.name),
                "seconds": seconds,
            }
        )
        if not as_json:
            if was_built:
                verb = "reused"
            elif imported_from_source(runtime.name):
                verb = f"imported from the runtime source and finished in {seconds:.0f} s"
            elif waited_for_another_build(runtime.name):
                verb = f"built by another process (waited {seconds:.0f} s)"
            else:
                verb = f"built in {seconds:.0f} s"
            click.echo(f"{runtime.name}: {verb} -> {runtime.root()}")
    if as_json:
        emit_json({"runtimes": results})


@command.command(name="export")
@click.argument("names", nargs=-1, required=True)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(file_okay=False, path_type=str),
    help="Folder to write into.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the manifests as JSON.")
def export_command(names: tuple[str, ...], out: str, as_json: bool) -> None:
    """Write each built runtime (or shared build cache: musl-deps-ARCH, musl-zlib-ARCH, zig-cache,
    native-libraries, rust-std) as NAME.tar.xz plus its manifest NAME.json (data entry, inputs' sha256,
    revisions, the archive's sha256)."""
    from pathlib import Path

    from pipeline.log import log
    from pipeline.output import emit_json
    from pipeline.runtimes.archive import export

    log.configure(enabled=not as_json)  # --json: stdout carries the JSON and stderr stays quiet
    manifests = [export(name, Path(out)) for name in names]
    if as_json:
        emit_json({"archives": manifests})
        return
    for manifest in manifests:
        click.echo(f"{manifest['name']}: {Path(out) / manifest['archive']} sha256 {manifest['sha256']}")


@command.command(name="import")
@click.argument("archives", nargs=-1, required=True)
@click.option(
    "--sha256", "sha256", default=None, help="The pin (default: the sha256 in the manifest beside it)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def import_command(archives: tuple[str, ...], sha256: str | None, as_json: bool) -> None:
    """Import runtime archives (a file, or an http(s) URL of one) into the cache after checking each against its
    pin and against this rewheel's recipe for that runtime; then finish it (the musl profile, seconds)."""
    import json as _json
    import time
    from pathlib import Path
    from urllib.parse import urlparse

    from pipeline.errors import FetchError, RewheelError
    from pipeline.log import log
    from pipeline.output import emit_json

    log.configure(enabled=not as_json)  # --json: stdout carries the JSON and stderr stays quiet
    from pipeline.runtimes import get_runtime
    from pipeline.runtimes.archive import SUFFIX, import_archive
    from pipeline.runtimes.sources import fetch_archive

    if sha256 is not None and len(archives) > 1:
        raise RewheelError("--sha256 pins one archive; give one ARCHIVE with it")
    results = []
    for given in archives:
        started = time.monotonic()
        manifest = None
        if urlparse(given).scheme in ("http", "https"):
            base, _, filename = given.rpartition("/")
            name = filename.removesuffix(SUFFIX).removesuffix(".json")
            try:
                path, manifest = fetch_archive(base, name)
            except FetchError as exc:
                raise FetchError(f"{base}: {exc}") from None
        else:
            path = Path(given)
            if not path.is_file():
                raise RewheelError(f"{given}: no such archive")
            beside = path.with_name(path.name.removesuffix(SUFFIX) + ".json")
            if beside.is_file():
                try:
                    manifest = _json.loads(beside.read_text(encoding="utf-8"))
                except ValueError:
                    raise RewheelError(f"{beside}: not a JSON manifest") from None
        pin = sha256 or (str(manifest.get("sha256")) if isinstance(manifest, dict) else None)
        item = import_archive(path, sha256=pin, manifest=manifest)
        if item.kind == "runtime":
            get_runtime(item.name).build()  # the profile layer: seconds, no compile
        seconds = round(time.monotonic() - started, 1)
        results.append({"name": item.name, "kind": item.kind, "root": str(item.folder), "seconds": seconds})
        if not as_json:
            click.echo(f"{item.name}: imported in {seconds:.1f} s -> {item.folder}")
    if as_json:
        emit_json({"imported": results})
