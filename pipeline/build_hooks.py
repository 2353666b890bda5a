"""PEP 517 front-end steps run inside the build sandbox with a build venv's Python (stdlib and `build` only).

    python build_hooks.py metadata TREE OUT        the backend's prepare_metadata_for_build_wheel hook (or a
                                                    wheel build when it has none) writes TREE's .dist-info
                                                    into OUT
    python build_hooks.py missing-requirements TREE
                                                    prints, as one JSON list, the names of what the backend's
                                                    get_requires_for_build_wheel hook asks for and the venv
                                                    lacks

The sandbox may not see rewheel itself, so the caller copies this file into the work folder it binds
(pipeline.builders.backends.zig.builder.sandboxed_build_hook) and runs it by path. Nothing of `pipeline` is
imported here.
"""

from __future__ import annotations

import json
import os
import sys


def metadata(tree: str, out: str) -> str:
    """The .dist-info folder the backend wrote for `tree` into `out`."""
    from build import ProjectBuilder

    return ProjectBuilder(tree).metadata_path(out)


def missing_requirements(tree: str) -> list[str]:
    """The requirements (as written) the backend's hook adds for a wheel build that this Python lacks."""
    from build import ProjectBuilder

    missing = ProjectBuilder(tree).check_dependencies("wheel")
    return sorted({chain[0] for chain in missing})


def drop_own_folder() -> None:
    """Run by path, Python puts this file's folder first on sys.path: in a checkout that is pipeline/, whose
    build/ package would shadow the `build` front end, and in the sandbox the work folder the backend writes."""
    here = os.path.dirname(os.path.realpath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.realpath(entry or os.curdir) != here]


def main(argv: list[str]) -> int:
    if argv[:1] == ["metadata"] and len(argv) == 3:
        metadata(argv[1], argv[2])
        return 0
    if argv[:1] == ["missing-requirements"] and len(argv) == 2:
        print(json.dumps(missing_requirements(argv[1])))
        return 0
    print("usage: build_hooks.py metadata TREE OUT | missing-requirements TREE", file=sys.stderr)
    return 2


if __name__ == "__main__":
    drop_own_folder()
    sys.exit(main(sys.argv[1:]))
