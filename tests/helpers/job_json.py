"""The JSON shape of one job result in `rewheel build --json`: keys in order, and the type of each value."""

from __future__ import annotations

# The JSON of one job result, as `rewheel build --json` prints it: these keys with these types, as captured from
# a real run before the orchestrator's results became dataclasses. Extend, never rename: a new key is added here
# too, a renamed or lost one fails.
JOB_SHAPE = {
    "job": str, "recipe": str, "version": str, "target": str, "python": str, "status": str, "ok": bool,
    "backend": (str, type(None)), "reason": str, "wheels": list, "records": list, "seconds": float,
    "stage": (str, type(None)), "message": str, "work_dir": (str, type(None)), "smoke": list, "side_files": list,
}  # fmt: skip
SMOKE_RESULT_SHAPE = {
    "wheel": str, "target": str, "status": str, "ok": bool, "runtime": (str, type(None)),
    "python": (str, type(None)), "message": str, "imported": list, "failures": list, "output": str,
    "skipped": list, "runtime_limits": list, "dependencies": list, "command": dict,
}  # fmt: skip
NOT_RUN_SHAPE = {"status": str, "runtime": type(None), "message": str}


def assert_shape(data: dict[str, object], shape: dict[str, object]) -> None:
    """The keys of `data` in the order of `shape`, each value of the type(s) the shape names."""
    assert list(data) == list(shape), f"keys changed: {list(data)}"
    for key, kind in shape.items():
        assert isinstance(data[key], kind), f"{key}: {data[key]!r} is not {kind}"  # type: ignore[arg-type]
