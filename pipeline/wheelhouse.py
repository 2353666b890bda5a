"""From a requirements file to a complete wheelhouse for one target: the stage behind `rewheel build -r`.

1. gaps: resolve the file for the target (gaps.py) and sort its distributions into upstream-wheel, pure and
   needs-build;
2. recipes: every needs-build distribution gets a recipe that lists its version, the target and the Python,
   looked for in this order:
   a. the recipes folder (--recipes DIR; default recipes/ of the nearest folder above the current one that has
      one), when its recipe already fits;
   b. the review folder (--new-recipes DIR; default recipes-new/ beside the recipes folder), when a recipe
      there fits: one written by an earlier run, or one the user wrote or edited; it is used as it is;
   c. else recipe_new writes one into the review folder: a new recipe (its [test] from a probe build), or,
      when (a) or (b) has a recipe for the project without this version, a copy of it with the version added
      as another [[source]] (tomlkit keeps its comments and edits). A recipe is never regenerated.
3. build: those jobs go through the orchestrator (run_jobs: build, repair, verify, smoke; records; quarantine);
4. upstream: each fitting upstream wheel is downloaded by the sha256 the index listed (cached by hash) and
   put through the symbol checker for the target like every built wheel;
5. publish: rewheel's wheels and the upstream ones go into one static index (pipeline.index.publish), and the
   result is checked to hold a wheel for every distribution of the resolved set, so that index alone
   installs the whole file on the target.

No distribution stops the others: a refusal (no sdist, no recipe, a job the recipe does not plan) or a failure
(build, verify, smoke, an upstream wheel failing verify) is that distribution's one-line reason in `reasons`,
everything else still runs, and only the publishing waits for a complete set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name, parse_wheel_filename

from pipeline.builders.orchestrator import RunSummary, run_jobs
from pipeline.errors import RewheelError
from pipeline.fetch import Pin, fetch
from pipeline.gaps import NEEDS_BUILD, PURE, UNAVAILABLE, UPSTREAM_WHEEL, Gap, GapsReport, find_gaps
from pipeline.index import PublishResult, publish
from pipeline.index.gate import check_verified
from pipeline.log import log
from pipeline.plan import ANY_PYTHON, Job, plan
from pipeline.recipe import Recipe, load_recipe
from pipeline.recipe_new import RecipeWritten, write_recipe


@dataclass
class UpstreamWheel:
    gap: Gap
    path: Path
    ok: bool
    problem: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.gap.name,
            "version": self.gap.version,
            "status": self.gap.status,
            "wheel": str(self.path),
            "verified": self.ok,
            "problem": self.problem,
        }


@dataclass
class WheelhouseResult:
    report: GapsReport
    recipes: dict[str, Path] = field(default_factory=dict)  # needs-build name -> recipe used
    written: list[RecipeWritten] = field(default_factory=list)
    summary: RunSummary | None = None
    upstream: list[UpstreamWheel] = field(default_factory=list)
    published: PublishResult | None = None
    problems: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # name -> why it has no good wheel (one line)
    missing: list[str] = field(default_factory=list)  # name==version without a wheel in the wheelhouse

    def refuse(self, name: str, reason: str) -> None:
        reason = " ".join(reason.split())
        self.reasons.setdefault(name, reason)
        self.problems.append(f"{name}: {reason}")

    @property
    def ok(self) -> bool:
        return not self.problems

    def wheels(self) -> list[Path]:
        built = self.summary.wheels if self.summary else []
        return [*built, *(u.path for u in self.upstream if u.ok)]

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "gaps": self.report.to_json(),
            "recipes": {name: str(path) for name, path in self.recipes.items()},
            "recipes_written": [w.to_json() for w in self.written],
            "build": self.summary.to_json() if self.summary else None,
            "upstream": [u.to_json() for u in self.upstream],
            "published": self.published.to_json() if self.published else None,
            "problems": self.problems,
            "reasons": self.reasons,
            "missing": self.missing,
        }


def _recipe_fits(recipe: Recipe, version: str, target: str, python: str) -> bool:
    return (
        any(s.version == version for s in recipe.source)
        and target in recipe.targets
        and python in recipe.python
        and not recipe.is_excluded(target, python)
    )


def _fitting_review_recipe(folder: Path, gap: Gap, target: str, python: str) -> Path | None:
    """A recipe in the review folder that already fits (written by an earlier run, or by the user)."""
    from pipeline.gaps import recipes_by_name

    path = recipes_by_name(folder).get(gap.name) if folder.is_dir() else None
    if path is not None and _recipe_fits(load_recipe(path), gap.version, target, python):
        return path
    return None


def recipes_for(
    report: GapsReport,
    *,
    recipes_dir: Path,
    new_recipes_dir: Path,
    refuse: Callable[[str, str], None] | None = None,
) -> tuple[dict[str, Path], list[RecipeWritten]]:
    """A recipe for each needs-build distribution: the project's own when it fits, else the review folder's
    when it fits, else one written now. A distribution that gets none is passed to `refuse` with its reason
    (without `refuse`, the error is raised)."""
    chosen: dict[str, Path] = {}
    written: list[RecipeWritten] = []
    for gap in report.requirements:
        if gap.status != NEEDS_BUILD:
            continue
        try:
            if gap.recipe is not None and _recipe_fits(
                load_recipe(gap.recipe), gap.version, report.target, report.python
            ):
                chosen[gap.name] = gap.recipe
                continue
            reviewed = _fitting_review_recipe(new_recipes_dir, gap, report.target, report.python)
            if reviewed is not None:
                log.say(f"recipe: {gap.name}=={gap.version}: using {reviewed} as it is")
                chosen[gap.name] = reviewed
                continue
            log.say(f"recipe: writing {gap.name}=={gap.version} for {report.target} into {new_recipes_dir}")
            result = write_recipe(
                f"{gap.name}=={gap.version}",
                targets=[report.target],
                pythons=[report.python],
                output=new_recipes_dir,
                recipes_dir=recipes_dir,
            )
        except RewheelError as exc:
            if refuse is None:
                raise
            refuse(gap.name, f"no recipe: {exc}")
            continue
        written.append(result)
        chosen[gap.name] = result.path
        if result.needs_review:
            log.say(f"recipe: {result.path} needs review: {result.needs_review}")
    return chosen, written


def jobs_for(
    report: GapsReport, recipes: dict[str, Path], refuse: Callable[[str, str], None] | None = None
) -> list[Job]:
    """The build jobs for the needs-build distributions, in the plan's dependency order (a recipe that does not
    load is passed to `refuse`; without it, the error is raised)."""
    loaded = []
    for name, path in recipes.items():
        try:
            loaded.append(load_recipe(path))
        except RewheelError as exc:
            if refuse is None:
                raise
            refuse(name, f"recipe {path} does not load: {exc}")
    wanted = {(g.name, g.version) for g in report.requirements if g.status == NEEDS_BUILD}
    return [
        job
        for job in plan(loaded, [report.target])
        if (canonicalize_name(job.recipe.name), job.version) in wanted
        and job.python in (report.python, ANY_PYTHON)
    ]


def fetch_upstream(
    report: GapsReport, refuse: Callable[[str, str], None] | None = None
) -> list[UpstreamWheel]:
    """Download each fitting upstream wheel by the sha256 the index listed, then verify it for the target (a
    download that fails is passed to `refuse`; without it, the error is raised)."""
    fetched = []
    for gap in report.requirements:
        if gap.status not in (UPSTREAM_WHEEL, PURE) or gap.file is None:
            continue
        pin = Pin(filename=gap.file.filename, sha256=gap.file.sha256, url=gap.file.url or None)
        if not pin.url:
            pin = Pin(gap.file.filename, gap.file.sha256, project=gap.name, version=gap.version)
        try:
            path = fetch(pin)
        except RewheelError as exc:
            if refuse is None:
                raise
            refuse(gap.name, f"upstream wheel {gap.file.filename} could not be fetched: {exc}")
            continue
        ok, why = check_verified(path, report.target)
        log.say(f"upstream: {path.name}: {'verified' if ok else 'FAILED verify: ' + why}")
        fetched.append(UpstreamWheel(gap, path, ok, why))
    return fetched


def missing_distributions(report: GapsReport, wheels: list[Path]) -> list[str]:
    """name==version of every resolved distribution with no wheel among `wheels`."""
    have = set()
    for wheel in wheels:
        name, version, _, _ = parse_wheel_filename(wheel.name)
        have.add((canonicalize_name(name), str(version)))
    return [f"{g.name}=={g.version}" for g in report.requirements if (g.name, g.version) not in have]


def build_wheelhouse(
    requirements: Path,
    target: str,
    python: str,
    *,
    publish_to: str | None = None,
    recipes_dir: Path | None = None,
    new_recipes_dir: Path | None = None,
    wheelhouse: Path | None = None,
    backend: str = "auto",
    smoke: bool = True,
    force: bool = False,
) -> WheelhouseResult:
    """Build what the target lacks, fetch what upstream has, verify everything, publish it as one index."""
    from pipeline.gaps import check_python
    from pipeline.paths import default_wheelhouse, project_root
    from pipeline.targets import get_target

    get_target(target)  # unusable input is one line, before any progress
    check_python(python)
    from pipeline.requirements import read_requirements

    checked = read_requirements(requirements)  # every refusal of the file comes before anything is fetched
    recipes_dir = recipes_dir or project_root() / "recipes"
    new_recipes_dir = new_recipes_dir or recipes_dir.parent / "recipes-new"
    log.say(f"gaps: resolving {requirements} for {target} / Python {python}")
    report = find_gaps(checked, target, python, recipes_dir=recipes_dir)
    counts = ", ".join(f"{report.count(s)} {s}" for s in (UPSTREAM_WHEEL, PURE, NEEDS_BUILD, UNAVAILABLE))
    log.say(f"gaps: {len(report.requirements)} distribution(s): {counts}")
    result = WheelhouseResult(report)
    for gap in report.requirements:
        if gap.status == UNAVAILABLE:
            result.refuse(gap.name, f"no wheel fits {target} and the index has no sdist to build")

    result.recipes, result.written = recipes_for(
        report, recipes_dir=recipes_dir, new_recipes_dir=new_recipes_dir, refuse=result.refuse
    )
    jobs = jobs_for(report, result.recipes, refuse=result.refuse)
    planned = {(canonicalize_name(j.recipe.name), j.version) for j in jobs}
    for gap in report.requirements:
        if gap.name in result.recipes and (gap.name, gap.version) not in planned:
            result.refuse(gap.name, f"its recipe {result.recipes[gap.name]} plans no job for {target}")
    if jobs:
        log.say(f"build: {len(jobs)} job(s): {', '.join(j.id for j in jobs)}")
        result.summary = run_jobs(
            jobs,
            backend=backend,
            wheelhouse=wheelhouse or default_wheelhouse(),
            smoke=smoke,
            force=force,
        )
        for outcome in result.summary.failed:
            message = outcome.message.removeprefix(f"{outcome.job.id}: ")
            result.refuse(
                canonicalize_name(outcome.job.recipe.name), f"{outcome.status} at {outcome.stage}: {message}"
            )

    result.upstream = fetch_upstream(report, refuse=result.refuse)
    for upstream in result.upstream:
        if not upstream.ok:
            result.refuse(
                upstream.gap.name,
                f"{upstream.path.name} did not pass verify for {target}: {upstream.problem}",
            )

    result.missing = missing_distributions(report, result.wheels())
    if result.missing and not result.problems:
        result.problems.append(f"no wheel for: {', '.join(result.missing)}")
    if publish_to and result.problems:
        lacking = f"no good wheel for {', '.join(result.missing)}" if result.missing else "failures"
        log.say(f"publish: not publishing to {publish_to}: {lacking} (reasons in the summary)")
    elif publish_to:
        built = result.summary.wheels if result.summary else []
        verdicts = {**dict.fromkeys(built, True), **{u.path: u.ok for u in result.upstream}}
        from pipeline.proof import upstream_proofs  # upstream wheels get their own verify and smoke on record

        # smoked with the very versions the file resolved to (pandas with the wheelhouse's numpy, not the newest)
        resolved = [f"{g.name}=={g.version}" for g in report.requirements]
        proofs = upstream_proofs(result.upstream, target, python, smoke=smoke, constraints=resolved)
        result.published = publish(
            result.wheels(), publish_to, target=target, verified=verdicts, proofs=proofs
        )
        if result.published.unconfirmed:
            result.problems.append(
                f"upload unconfirmed (the server's page does not list it with its sha256): "
                f"{', '.join(result.published.unconfirmed)}"
            )
        log.say(
            f"publish: {len(result.wheels())} wheel(s) for {len(report.requirements)} distribution(s) in {publish_to}"
        )
    return result
