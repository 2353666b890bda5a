"""cibuildwheel's words for a rewheel target, derived from the target's os, arch, libc and policy.

cibuildwheel names a build by platform (`linux`, `windows`), arch in each OS's own spelling (x86_64, aarch64,
AMD64, ARM64, x86, as rewheel's targets spell them too), an identifier (`cp311-musllinux_x86_64`,
`cp311-win_amd64`) and, for Linux, the image option that selects the policy (`manylinux2014`, `musllinux_1_2`,
from cibuildwheel's own pinned image list). Nothing here is stored on the core Target: a target cibuildwheel
does not build (any) gets "none", a policy level without an image gets no image ("verify only").
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from pipeline.targets import Target, python_tag

if TYPE_CHECKING:
    from pipeline.plan import Job

# cibuildwheel names the manylinux_2_17 image by its PEP 599 alias.
_IMAGE_POLICY = {
    "manylinux2014": "manylinux_2_17",
    "manylinux2010": "manylinux_2_12",
    "manylinux1": "manylinux_2_5",
}


@cache
def cibuildwheel_images() -> dict[tuple[str, str], str]:
    """(policy, arch) -> cibuildwheel's image option, from cibuildwheel's own pinned image list."""
    import configparser

    try:
        text = resources.files("cibuildwheel").joinpath("resources/pinned_docker_images.cfg").read_text()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return {}
    parser = configparser.ConfigParser(inline_comment_prefixes=("#",))
    parser.read_string(text)
    images = {}
    for arch in parser.sections():
        for image in parser[arch]:
            images[(_IMAGE_POLICY.get(image, image), arch)] = image
    return images


def cibw_platform(target: Target) -> str:
    return target.os if target.os in ("linux", "windows") else "none"


def cibw_arch(target: Target) -> str:
    return target.arch if target.os in ("linux", "windows") else "none"


def cibw_identifier(target: Target) -> str:
    """The part after "cp311-" in a cibuildwheel build identifier: manylinux_x86_64, musllinux_aarch64,
    win_amd64 (every Windows edition shares its tag's identifier)."""
    own = target.policy_platform
    if own is not None:
        return f"{own.family}_{own.arch}"
    return target.platform_tag if target.is_windows else "none"


def cibw_image(target: Target) -> str | None:
    """The image option that selects the target's policy, or None where cibuildwheel has no image for it."""
    if not target.is_linux or not target.policy:
        return None
    return cibuildwheel_images().get((target.policy, target.arch))


def build_identifier(target: Target, python: str) -> str:
    """cibuildwheel's identifier for this target and a Python version such as "3.11"."""
    return f"{python_tag(python)}-{cibw_identifier(target)}"


def cibuildwheel_facts(target: Target) -> dict[str, str | None]:
    """The cibw_* fields `rewheel targets --json` has always carried."""
    return {
        "cibw_platform": cibw_platform(target),
        "cibw_arch": cibw_arch(target),
        "cibw_identifier": cibw_identifier(target),
        "cibw_image": cibw_image(target),
    }


def target_json(target: Target) -> dict[str, object]:
    """A target's JSON with cibuildwheel's words for it (cibw_*), as `rewheel targets --json` and build records
    have always carried them."""
    data = target.to_json()
    data.update(cibuildwheel_facts(target))
    return data


def job_json(job: Job) -> dict[str, object]:
    """A job's JSON with its cibuildwheel build identifier (`rewheel plan --json`, the CI matrix, records)."""
    from pipeline.plan import ANY_PYTHON
    from pipeline.targets import get_target

    data = job.to_json()
    if job.python != ANY_PYTHON:
        data["cibw_build_identifier"] = build_identifier(get_target(job.target), job.python)
    return data
