"""The container-free cross backend: zig as the C/C++ compiler for every target, one room.

- builder.py: the backend itself (what the orchestrator calls);
- source_check.py: what a source needs (build backend, languages) and what zig cannot do for it;
- toolchain.py: zig wrapper scripts (cc, c++, ar, ...) for a target triple;
- target_sysconfig.py: a target CPython's _sysconfigdata and headers, so setuptools cross-compiles;
- native_libraries.py: the recipe's [[native]] C libraries built for the target first.
"""

from pipeline.build.backends.zig.builder import ZigBackend

__all__ = ["ZigBackend"]
