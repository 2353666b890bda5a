"""The Simple Repository API pages, as bytes: PEP 503 HTML and PEP 691 JSON, with PEP 629 / 658 / 700 / 714.

Links are relative (`../../files/<project>/<file>`), so the same tree works behind any host name, under
any path prefix, from a bucket or from `rewheel serve`. Pages are deterministic: the same entries give
the same bytes (no timestamps of rendering), so re-running an index build changes nothing.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable

from packaging.version import InvalidVersion, Version

from pipeline.index.wheelinfo import FileEntry

# 1.1 = PEP 700 (versions, size, upload-time in JSON); pip accepts any 1.x.
API_VERSION = "1.1"
FILES_DIR = "files"
SIMPLE_DIR = "simple"
PROOF_SUFFIX = ".proof.json"  # pipeline/proof.py's records, served beside each file
PROOF_KEY = "_rewheel_proof"


def file_href(entry: FileEntry) -> str:
    """A file's link relative to its project page (simple/<project>/)."""
    return f"../../{FILES_DIR}/{entry.project}/{entry.filename}"


def _version_key(text: str) -> tuple[int, Version | str]:
    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def _sorted(entries: Iterable[FileEntry]) -> list[FileEntry]:
    return sorted(entries, key=lambda e: (_version_key(e.version), e.filename))


def project_html(project: str, entries: Iterable[FileEntry]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        f"    <title>Links for {html.escape(project)}</title>",
        "  </head>",
        "  <body>",
        f"    <h1>Links for {html.escape(project)}</h1>",
    ]
    for entry in _sorted(entries):
        attributes = [f'href="{html.escape(file_href(entry))}#sha256={entry.sha256}"']
        if entry.requires_python:
            attributes.append(f'data-requires-python="{html.escape(entry.requires_python, quote=True)}"')
        # PEP 714's name only: the older data-dist-info-metadata crashes pip 22.3 on the JSON page's
        # twin (TypeError: unhashable type: 'dict'), which is why PEP 714 renamed it.
        attributes.append(f'data-core-metadata="sha256={entry.metadata_sha256}"')
        if entry.yanked is not None:
            attributes.append(f'data-yanked="{html.escape(entry.yanked, quote=True)}"')
        lines.append(f"    <a {' '.join(attributes)}>{html.escape(entry.filename)}</a><br>")
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode("utf-8")


def project_json(project: str, entries: Iterable[FileEntry]) -> bytes:
    ordered = _sorted(entries)
    files = []
    for entry in ordered:
        item: dict[str, object] = {
            "filename": entry.filename,
            "url": file_href(entry),
            "hashes": {"sha256": entry.sha256},
            "requires-python": entry.requires_python,
            "core-metadata": {"sha256": entry.metadata_sha256},  # PEP 714: never "dist-info-metadata"
            "size": entry.size,
        }
        if entry.upload_time:
            item["upload-time"] = entry.upload_time
        item["yanked"] = False if entry.yanked is None else (entry.yanked or True)
        # PEP 691 reserves "_"-prefixed keys for the server's private use: what rewheel needs to update
        # this page without reopening the wheel.
        item["_rewheel"] = {"version": entry.version, "verification": entry.verification}
        if entry.proof_sha256:
            # Private too: installers ignore it; people and `rewheel report` follow it to the proof record.
            item[PROOF_KEY] = {"url": file_href(entry) + PROOF_SUFFIX, "sha256": entry.proof_sha256}
        files.append(item)
    versions = sorted({e.version for e in ordered}, key=_version_key)
    document = {"meta": {"api-version": API_VERSION}, "name": project, "versions": versions, "files": files}
    return (json.dumps(document, separators=(",", ":")) + "\n").encode("utf-8")  # no indent: C encoder


def root_html(projects: Iterable[str]) -> bytes:
    lines = [
        "<!DOCTYPE html>",
        "<html>",
        "  <head>",
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">',
        "    <title>Simple index</title>",
        "  </head>",
        "  <body>",
    ]
    lines += [f'    <a href="{html.escape(p)}/">{html.escape(p)}</a><br>' for p in sorted(projects)]
    lines += ["  </body>", "</html>", ""]
    return "\n".join(lines).encode("utf-8")


def root_json(projects: Iterable[str]) -> bytes:
    document = {"meta": {"api-version": API_VERSION}, "projects": [{"name": p} for p in sorted(projects)]}
    return (json.dumps(document, separators=(",", ":")) + "\n").encode("utf-8")


def entries_from_json(project: str, page: bytes) -> dict[str, FileEntry]:
    """The entries a project page was made from (its own JSON), so an update starts from the page."""
    document = json.loads(page)
    entries = {}
    for item in document["files"]:
        private = item.get("_rewheel") or {}
        yanked = item.get("yanked", False)
        entries[item["filename"]] = FileEntry(
            filename=item["filename"],
            project=project,
            version=private.get("version") or _version_from_filename(item["filename"]),
            sha256=item["hashes"]["sha256"],
            size=int(item["size"]),
            metadata_sha256=item["core-metadata"]["sha256"],
            requires_python=item.get("requires-python"),
            upload_time=item.get("upload-time"),
            yanked=None if yanked is False else ("" if yanked is True else str(yanked)),
            verification=private.get("verification"),
            proof_sha256=(item.get(PROOF_KEY) or {}).get("sha256"),
        )
    return entries


def _version_from_filename(filename: str) -> str:
    from packaging.utils import parse_wheel_filename

    return str(parse_wheel_filename(filename)[1])
