"""The wheel-source backend: recipes whose source is a wheel (pip) are patched and re-packed, not compiled.

One job gives two files with the same content:
- `out_dir/<name>-<version>-<build tag>-<tags>.whl`, the wheel for the private index: distinguishable from
  the upstream file, and preferred by pip (for equal version and tags pip takes the higher build tag, and
  any build tag ranks above none). This is the one returned in BuildResult.wheels, so it is the one the
  orchestrator verifies and publishes.
- `out_dir/ensurepip/<name>-<version>-<tags>.whl`, the exact upstream file name, because CPython's ensurepip
  opens `_bundled/pip-<version>-py3-none-any.whl` by name. It must never go to an index (it would shadow the
  upstream file under the same name with different bytes), hence its own folder; see docs/patched-pip.md.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from pipeline.builders.backends import BuildRequest, BuildResult
from pipeline.errors import RewheelError

if TYPE_CHECKING:
    from pipeline.plan import Job

DEFAULT_BUILD_TAG = "1rewheel"
ENSUREPIP_FOLDER = "ensurepip"


class WheelSourceBackend:
    name = "wheel-source"

    def unavailable_reason(self, job: Job) -> str | None:
        if job.kind != "wheel":
            return f"the wheel-source backend only re-packs wheel sources; {job.id} is an {job.kind}"
        return None

    def fingerprint(self, job: Job) -> dict[str, str]:
        from pipeline import __version__

        source = job.recipe.source_for(job.version)
        patches = job.recipe.patches_for(job.version, job.target, "wheel")
        return {
            "backend": self.name,
            "rewheel": __version__,
            "source": source.sha256,
            "build_tag": build_tag_for(job),
            "patches": ",".join(p.sha256 for p in patches),
        }

    def build(self, request: BuildRequest) -> BuildResult:
        from pipeline.log import log
        from pipeline.patching import apply_recipe_patches
        from pipeline.unpack import unpack
        from pipeline.wheelfile import read_wheel_metadata, repack_wheel

        job = request.job
        reason = self.unavailable_reason(job)
        if reason:
            raise RewheelError(reason)
        tree = request.work_dir / "wheel-tree"
        if tree.exists():
            shutil.rmtree(tree)
        unpack(request.source_file, tree)
        upstream = read_wheel_metadata(tree)
        if upstream.version != job.version:
            raise RewheelError(
                f"{request.source_file.name}: contains {upstream.name} {upstream.version}, "
                f"but the recipe says version {job.version}"
            )
        applied = apply_recipe_patches(job.recipe, job.version, job.target, "wheel", tree)
        names = ", ".join(p.name for p in applied) or "no patches"
        log.say(f"wheel-source: {job.id}: applied {names}")
        tag = build_tag_for(job)
        index_wheel = repack_wheel(tree, request.out_dir, build_tag=tag)
        ensurepip_wheel = repack_wheel(tree, request.out_dir / ENSUREPIP_FOLDER)
        log.say(f"wheel-source: wrote {index_wheel.name} and {ENSUREPIP_FOLDER}/{ensurepip_wheel.name}")
        notes = [
            f"same content under the upstream name for ensurepip: {ENSUREPIP_FOLDER}/{ensurepip_wheel.name}"
        ]
        if not applied:
            notes.append("no wheel-stage patch applies to this version: re-packed unchanged")
        return BuildResult(
            wheels=[index_wheel],
            commands=[["rewheel-repack", str(request.source_file), *(str(p) for p in applied)]],
            tool_versions={"rewheel-wheelfile": "1"},
            repaired=True,  # pure Python: nothing for auditwheel/delvewheel to do
            notes=notes,
        )


def build_tag_for(job: Job) -> str:
    return job.recipe.source_for(job.version).build_tag or DEFAULT_BUILD_TAG
