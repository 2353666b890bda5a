"""The index's landing pages: what is proven for which target, for people (the Simple API pages are for pip).

    index.html                     at the index root: a matrix of packages x targets x Pythons
    packages/<project>.html        one page per package: each file's proof, install lines, channel notes
    files/<project>/<file>.proof.json   the proof records themselves (pipeline/proof.py), written on publish
    .rewheel/landing.json          the matrix's rows (derived, never served), so an update rereads only the
                                   projects it changed; lost or unreadable, it is rebuilt from the pages

The matrix covers the root and its channels (`<root>/<channel>/`, e.g. nanoserver), since a person looks
for a package, not for a channel. Every cell is read from a proof record: built here or upstream, verified,
imported, or why not (the first finding, the runtime that was missing, the import failure). Files published
before proof records existed show "no proof record".

Plain HTML and CSS, no script. Everything shown comes from wheels and their records, which are untrusted
(a project name, a finding's symbol, a test's output), so every value goes through html.escape and every
link is built from names the index itself validated. `rewheel report` prints the same matrix (`Matrix`).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from packaging.utils import parse_wheel_filename

from pipeline.index import pages
from pipeline.proof import Verdict, verdict

PACKAGES_DIR = "packages"
WHY_CHARS = 140  # in a matrix cell; the package page and the proof record have the whole text
LANDING_PAGE = "index.html"

CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 78em; padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
p.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: .6em 0; }
#matrix { width: 100%; table-layout: fixed; font-size: .92em; } #matrix tr > :first-child { width: 9em; }
#matrix td, #matrix th { overflow-wrap: anywhere; } th, td { border: 1px solid #d0d0d7; padding: .35em .6em;
  text-align: left; vertical-align: top; } th { background: #f3f3f6; font-weight: 600; }
td.proven { background: #e6f4ea; } td.partial { background: #fff6dd; } td.failed { background: #fde8e8; }
td.none { color: #999; } td.unknown { background: #f0f0f0; }
.why { display: block; font-size: .85em; color: #555; max-width: 22em; overflow-wrap: anywhere; }
code, pre { font: 13px/1.4 ui-monospace, monospace; } pre { background: #f6f6f8; padding: .6em; overflow-x: auto;
  white-space: pre-wrap; overflow-wrap: anywhere; max-height: 20em; }
.note { border-left: 4px solid #8a6d00; background: #fffbe8; padding: .4em .8em; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; } dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def python_of(filename: str) -> str:
    """The Python a file is for, from its tags: "3.11" (cp311), "3.8+" (abi3), "any" (pure)."""
    _, _, _, tags = parse_wheel_filename(filename)
    versions = set()
    for tag in tags:
        interpreter = tag.interpreter
        if interpreter.startswith("cp") and interpreter[2:].isdigit():
            label = f"{interpreter[2]}.{interpreter[3:]}"
            versions.add(f"{label}+" if tag.abi == "abi3" else label)
    return ", ".join(sorted(versions)) if versions else "any"


@dataclass
class Cell:
    """One published file as the matrix shows it."""

    project: str
    version: str
    filename: str
    channel: str | None
    target: str
    python: str
    verdict: Verdict
    file_url: str  # relative to the top index root
    proof_url: str | None
    proof: dict[str, Any] | None
    yanked: bool = False

    @property
    def state(self) -> str:
        v = self.verdict
        if v.origin == "none" or v.verified is None:
            return "unknown"
        if v.verified is False:
            return "failed"
        return "proven" if v.imported else "partial"

    def to_json(self) -> dict[str, object]:
        return {
            "project": self.project,
            "version": self.version,
            "filename": self.filename,
            "channel": self.channel,
            "target": self.target,
            "python": self.python,
            "origin": self.verdict.origin,
            "verified": self.verdict.verified,
            "imported": self.verdict.imported,
            "why_not": self.verdict.why_not,
            "label": self.verdict.label,
            "state": self.state,
            "file": self.file_url,
            "proof": self.proof_url,
            "yanked": self.yanked,
        }


@dataclass
class Matrix:
    root: Path
    cells: list[Cell] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    _by_place: dict[tuple[str, str, str], list[Cell]] | None = field(default=None, repr=False, compare=False)
    _indexed: int = field(default=-1, repr=False, compare=False)

    @property
    def projects(self) -> list[str]:
        return sorted({c.project for c in self.cells})

    @property
    def columns(self) -> list[tuple[str, str]]:
        return sorted({(c.target, c.python) for c in self.cells})

    def cell(self, project: str, column: tuple[str, str]) -> list[Cell]:
        """The newest version's files for a project in one column (older versions are on its page)."""
        if self._by_place is None or self._indexed != len(self.cells):
            self._by_place = {}
            for c in self.cells:
                self._by_place.setdefault((c.project, c.target, c.python), []).append(c)
            self._indexed = len(self.cells)
        found = self._by_place.get((project, *column), [])
        if not found:
            return []
        newest = max(found, key=lambda c: pages._version_key(c.version)).version
        return [c for c in found if c.version == newest]

    def to_json(self) -> dict[str, object]:
        return {
            "index": str(self.root),
            "channels": self.channels,
            "projects": self.projects,
            "columns": [{"target": t, "python": p} for t, p in self.columns],
            "files": [c.to_json() for c in self.cells],
        }


def _is_channel(folder: Path) -> bool:
    return (
        folder.is_dir()
        and not folder.name.startswith(".")
        and folder.name not in (pages.FILES_DIR, pages.SIMPLE_DIR, PACKAGES_DIR)
        and (folder / pages.SIMPLE_DIR).is_dir()
    )


def _read_proof(path: Path) -> dict[str, Any] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _target_of(filename: str, proof: dict[str, Any] | None, channel: str | None) -> str:
    if proof and isinstance(proof.get("target"), str) and proof["target"]:
        return str(proof["target"])
    from pipeline.errors import RewheelError
    from pipeline.index.gate import infer_target

    try:
        return infer_target(Path(filename), channel)
    except RewheelError:
        return "unknown"


def channels_of(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(folder.name for folder in root.iterdir() if _is_channel(folder))


def _project_cells(root: Path, channel: str | None, project: str) -> list[Cell]:
    """The cells of one project in one index (the root or a channel), from its JSON page and its proofs."""
    where = root / channel if channel else root
    page = where / pages.SIMPLE_DIR / project / "index.json"
    try:
        entries = pages.entries_from_json(project, page.read_bytes())
    except (ValueError, KeyError, TypeError, AttributeError, OSError):
        return []  # no page (not in this channel) or a damaged one (`index check` reports it)
    prefix = f"{channel}/" if channel else ""
    cells = []
    for entry in entries.values():
        file_url = f"{prefix}{pages.FILES_DIR}/{project}/{entry.filename}"
        proof = None
        if entry.proof_sha256:
            proof = _read_proof(where / pages.FILES_DIR / project / (entry.filename + pages.PROOF_SUFFIX))
        cells.append(
            Cell(
                project=project,
                version=entry.version,
                filename=entry.filename,
                channel=channel,
                target=_target_of(entry.filename, proof, channel),
                python=python_of(entry.filename),
                verdict=verdict(proof),
                file_url=file_url,
                proof_url=file_url + pages.PROOF_SUFFIX if proof is not None else None,
                proof=proof,
                yanked=entry.yanked is not None,
            )
        )
    return cells


def _projects_in(root: Path, channel: str | None) -> list[str]:
    simple = (root / channel if channel else root) / pages.SIMPLE_DIR
    if not simple.is_dir():
        return []
    return sorted(
        f.name for f in simple.iterdir() if not f.name.startswith(".") and (f / "index.json").is_file()
    )


def collect(root: Path) -> Matrix:
    """Every file of the index at `root` and of its channels, with what its proof record says."""
    matrix = Matrix(root, channels=channels_of(root))
    for channel in [None, *matrix.channels]:
        for project in _projects_in(root, channel):
            matrix.cells += _project_cells(root, channel, project)
    return matrix


# ---- HTML


def _page(title: str, body: list[str]) -> bytes:
    head = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
    ]
    return "\n".join([*head, *body, "</body>", "</html>", ""]).encode("utf-8")


def _breakable(name: str) -> str:
    """A target name escaped, with line-break opportunities after its underscores (long column heads)."""
    return "_<wbr>".join(esc(part) for part in name.split("_"))


def package_href(project: str) -> str:
    return f"{PACKAGES_DIR}/{quote(project)}.html"


def landing_html(matrix: Matrix) -> bytes:
    columns = matrix.columns
    body = [
        "<h1>Wheel index: what is proven where</h1>",
        '<p class="lead">Each cell: where the wheel came from (built here or upstream), whether the symbol '
        "checker verified it for the target, and whether it was imported on the target's runtime; or why not. "
        f'Installers use <a href="{pages.SIMPLE_DIR}/">{pages.SIMPLE_DIR}/</a>.</p>',
    ]
    if matrix.channels:
        links = ", ".join(
            f'<a href="{quote(c)}/{pages.SIMPLE_DIR}/">{esc(c)}/{pages.SIMPLE_DIR}/</a>'
            for c in matrix.channels
        )
        body.append(
            f'<p class="note">Channels (separate indexes for targets pip cannot tell apart by tag): {links}</p>'
        )
    if not matrix.cells:
        body.append("<p>No files published yet.</p>")
        return _page("Wheel index", body)
    body.append('<table id="matrix">')
    body.append(
        "<tr><th>package</th>"
        + "".join(f"<th>{_breakable(t)}<br>Python {esc(p)}</th>" for t, p in columns)
        + "</tr>"
    )
    for project in matrix.projects:
        row = [f'<tr><th><a href="{esc(package_href(project))}">{esc(project)}</a></th>']
        for column in columns:
            cells = matrix.cell(project, column)
            if not cells:
                row.append('<td class="none">no wheel</td>')
                continue
            parts = []
            for cell in cells:
                why_not = cell.verdict.why_not
                short = why_not if len(why_not) <= WHY_CHARS else why_not[: WHY_CHARS - 1] + "\u2026"
                why = f'<span class="why" title="{esc(why_not)}">{esc(short)}</span>' if why_not else ""
                proof = f' <a href="{esc(cell.proof_url)}">proof</a>' if cell.proof_url else ""
                yanked = " (yanked)" if cell.yanked else ""
                parts.append(f"{esc(cell.version)}{yanked}: {esc(cell.verdict.label)}{proof}{why}")
            state = cells[0].state
            attributes = f'class="{state}" data-project="{esc(project)}" data-target="{esc(column[0])}" data-python="{esc(column[1])}"'
            row.append(f"<td {attributes}>{'<br>'.join(parts)}</td>")
        body.append("".join(row) + "</tr>")
    body.append("</table>")
    return _page("Wheel index", body)


def _findings_table(title: str, findings: list[dict[str, Any]]) -> list[str]:
    if not findings:
        return [f"<p>{esc(title)}: none.</p>"]
    out = [
        f"<p>{esc(title)}:</p>",
        "<table><tr><th>code</th><th>file</th><th>library</th><th>symbol</th><th>message</th></tr>",
    ]
    for f in findings:
        out.append(
            "<tr>"
            + "".join(f"<td>{esc(f.get(k))}</td>" for k in ("code", "file", "library", "symbol", "message"))
            + "</tr>"
        )
    out.append("</table>")
    return out


def _proof_section(cell: Cell) -> list[str]:
    out = [f'<h3 id="{esc(cell.filename)}">{esc(cell.filename)}</h3>']
    facts: list[tuple[str, object]] = [
        ("target", cell.target),
        ("Python", cell.python),
        ("channel", cell.channel or "(main index)"),
        ("yanked", "yes (pip skips it unless pinned with ==)" if cell.yanked else "no"),
        ("verdict", cell.verdict.label + (f" ({cell.verdict.why_not})" if cell.verdict.why_not else "")),
    ]
    proof = cell.proof
    if proof is None:
        out.append("<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>")
        out.append("<p>No proof record: published before rewheel wrote them (see docs/index.md).</p>")
        return out
    file = proof.get("file") or {}
    origin = proof.get("origin") or {}
    facts += [("sha256", file.get("sha256")), ("origin", origin.get("kind"))]
    if origin.get("index_url"):
        facts.append(("from index", origin.get("index_url")))
    recipe = proof.get("recipe") or {}
    if recipe:
        facts.append(
            ("recipe", f"{recipe.get('path') or recipe.get('name')} (sha256 {recipe.get('sha256')})")
        )
    source = proof.get("source") or {}
    if source:
        facts.append(("source", f"{source.get('filename')} (sha256 {source.get('sha256')})"))
    for patch in proof.get("patches") or []:
        facts.append(
            ("patch", f"{patch.get('file')} (sha256 {patch.get('sha256')}, {patch.get('applied_by', '')})")
        )
    build = proof.get("build") or {}
    if build:
        facts.append(("backend", f"{build.get('backend')}: {build.get('reason') or ''}"))
        tools = build.get("tool_versions") or {}
        facts.append(("tools", ", ".join(f"{k} {v}" for k, v in sorted(tools.items()))))
        repair = build.get("repair") or {}
        if repair:
            facts.append(
                ("repair", f"{repair.get('tool')}" + (" (skipped)" if repair.get("skipped") else ""))
            )
    stamps = proof.get("timestamps") or {}
    facts += [(f"{k}", v) for k, v in stamps.items() if v]
    out.append("<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in facts) + "</dl>")
    for result in proof.get("verify") or []:
        ok = result.get("ok")
        word = "passed" if ok else ("failed" if ok is False else "not recorded")
        out.append(
            f"<h4>verify for {esc(result.get('target'))}: {esc(word)} (by {esc(result.get('by'))})</h4>"
        )
        out += _findings_table("findings", result.get("findings") or [])
        out += _findings_table("warnings", result.get("warnings") or [])
    smoke = proof.get("smoke") or {}
    out.append(f"<h4>smoke: {esc(smoke.get('status'))}</h4>")
    smoke_facts = [
        ("runtime", smoke.get("runtime")),
        ("interpreter", smoke.get("interpreter")),
        ("imported", ", ".join(smoke.get("imported") or [])),
        ("test command", smoke.get("command")),
        ("message", smoke.get("message")),
    ]
    out.append("<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in smoke_facts if v) + "</dl>")
    if smoke.get("output"):
        out.append(f"<pre>{esc(smoke.get('output'))}</pre>")
    out.append(f'<p><a href="../{esc(cell.proof_url)}">proof record (JSON)</a></p>')
    return out


def _where(spec: Any) -> str:
    """Where a target's wheels install, in a reader's words (from the target catalogue)."""
    if spec.is_linux and spec.policy:
        _family, _, version = spec.policy.partition("_")
        libc = "musl" if spec.is_musl else "glibc"
        return f"Linux {spec.arch}, {libc} {version.replace('_', '.')} or newer"
    if spec.is_windows:
        return f"Windows {spec.arch}, {spec.edition or 'desktop'}"
    return str(spec.platform_tag)


def _install_lines(project: str, cells: list[Cell]) -> list[str]:
    from pipeline.errors import RewheelError
    from pipeline.targets import get_target

    out = [
        "<h2>Install</h2>",
        "<p>INDEX is the address this site is served from (where this page's "
        f"<code>{PACKAGES_DIR}/</code> folder is).</p>",
        "<table><tr><th>target</th><th>where</th><th>command</th></tr>",
    ]
    for target in sorted({c.target for c in cells}):
        channel = next((c.channel for c in cells if c.target == target), None)
        where = "any platform" if target == "any" else ""
        with contextlib.suppress(RewheelError):
            spec = get_target(target)
            channel = spec.channel or channel
            where = _where(spec)
        index = f"INDEX/{channel}/{pages.SIMPLE_DIR}/" if channel else f"INDEX/{pages.SIMPLE_DIR}/"
        line = f"pip install --index-url {index} {project}"
        out.append(f"<tr><td>{esc(target)}</td><td>{esc(where)}</td><td><code>{esc(line)}</code></td></tr>")
    out.append("</table>")
    if any(c.channel == "nanoserver" or c.target.endswith("-nanoserver") for c in cells):
        out.append(
            '<p class="note">Nano Server: its wheels carry the same win_amd64 tag as desktop Windows wheels, so pip '
            "cannot tell them apart; they live in the <code>nanoserver</code> channel, a separate index. Point pip "
            "at that channel's simple/ inside Nano Server containers, and only there.</p>"
        )
    return out


def package_html(project: str, cells: list[Cell]) -> bytes:
    body = [
        '<p><a href="../">&larr; all packages</a></p>',
        f"<h1>{esc(project)}</h1>",
    ]
    body += _install_lines(project, cells)
    body.append("<h2>Files and their proof</h2>")
    ordered = sorted(cells, key=lambda c: (pages._version_key(c.version), c.target, c.filename), reverse=True)
    for cell in ordered:
        body += _proof_section(cell)
    return _page(f"{project}: proof", body)


STATE_FILE = "landing.json"  # under .rewheel/: the matrix's rows, so an update reads only what changed


def _cell_from_row(row: dict[str, Any]) -> Cell:
    return Cell(
        project=row["project"],
        version=row["version"],
        filename=row["filename"],
        channel=row["channel"],
        target=row["target"],
        python=row["python"],
        verdict=Verdict(row["origin"], row["verified"], row["imported"], row["why_not"]),
        file_url=row["file"],
        proof_url=row["proof"],
        proof=None,
        yanked=bool(row["yanked"]),
    )


def _load_state(path: Path) -> dict[str, list[dict[str, Any]]] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        rows: dict[str, list[dict[str, Any]]] = document["projects"]
        return rows if document.get("format") == 1 and isinstance(rows, dict) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_landing(
    root: Path, changed: Iterable[str] | None = None, *, reserved: str = ".rewheel", durable: bool = True
) -> None:
    """Regenerate the landing pages of the index at `root` (callers hold its lock).

    `changed`: the projects whose files changed (in the root or a channel); their package pages are
    rewritten and their matrix rows reread, the other rows come from the state kept in .rewheel/, so adding
    a wheel to a large index stays cheap. None (or no usable state): everything is reread. Package pages are
    written before the matrix that links to them, each aside and renamed; pages of packages that are gone
    are removed last, once nothing links to them."""
    from pipeline.index.static import AtomicBatch, _remove_temporaries, write_atomic

    channels = channels_of(root)
    state_path = root / reserved / STATE_FILE
    rows = _load_state(state_path) if changed is not None else None
    full = rows is None
    if rows is None:
        rows = {}
        redo = sorted({p for c in [None, *channels] for p in _projects_in(root, c)})
    else:
        redo = sorted(set(changed or ()))
    folder = root / PACKAGES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(folder)
    package_batch = AtomicBatch(durable)
    gone = []
    for project in redo:
        cells = [cell for c in [None, *channels] for cell in _project_cells(root, c, project)]
        if cells:
            rows[project] = [c.to_json() for c in cells]
            package_batch.write(
                folder / f"{project}.html", package_html(project, cells), only_if_changed=True
            )
        else:
            rows.pop(project, None)
            gone.append(project)
    matrix = Matrix(root, channels=channels)
    try:
        matrix.cells = [_cell_from_row(row) for project in sorted(rows) for row in rows[project]]
    except (KeyError, TypeError, AttributeError):
        # A state this code cannot read (another rewheel wrote it): start again from the pages.
        return write_landing(root, None, reserved=reserved, durable=durable)
    landing_batch = AtomicBatch(durable)
    landing_batch.write(root / LANDING_PAGE, landing_html(matrix), only_if_changed=True)
    package_batch.commit()
    landing_batch.commit()
    state_path.parent.mkdir(parents=True, exist_ok=True)
    state = json.dumps({"format": 1, "projects": rows}, separators=(",", ":")) + "\n"
    write_atomic(state_path, state.encode("utf-8"), durable=False)  # derived data: rebuilt when lost
    stale = _html_files(folder) if full else [folder / f"{project}.html" for project in gone]
    for page in stale:
        if page.name[: -len(".html")] not in rows:
            with contextlib.suppress(FileNotFoundError):
                page.unlink()


def _html_files(folder: Path) -> Iterable[Path]:
    with os.scandir(folder) as listing:
        return [folder / e.name for e in listing if e.name.endswith(".html") and not e.name.startswith(".")]
