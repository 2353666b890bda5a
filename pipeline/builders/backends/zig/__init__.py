"""The container-free cross backend: zig as the C/C++ compiler for every target, one room.

- builder.py: the backend itself (what the orchestrator calls);
- pipeline/source_inspect.py (below the backends): what a source needs, what a cross build cannot do;
- toolchain.py: zig wrapper scripts (cc, c++, ar, ...) for a target triple;
- target_sysconfig.py: a target CPython's _sysconfigdata and headers, so setuptools cross-compiles;
- native_libraries.py: the recipe's [[native]] C libraries built for the target first.
"""

from pipeline.builders.backends.zig.builder import ZigBackend, build_metadata_sandboxed

# The package's public face: other layers use these, never its modules.
__all__ = ["ZigBackend", "build_metadata_sandboxed"]
