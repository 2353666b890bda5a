"""pipeline/log.py: the one reporter every stage prints progress through (plain lines piped, a status line on a
terminal, a heartbeat while long steps run, muted per thread)."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.log import log

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from cold_start import STEP  # noqa: E402  (the benchmark's parser of step lines: they must stay parseable)

CLEAR = "\r\x1b[2K"


class Terminal(io.StringIO):
    """A stream that says it is a terminal, as stderr does on one."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def reset_log() -> Iterator[None]:
    yield
    log.configure()


def _wait_for(condition, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_piped_lines_are_plain_and_disabled_prints_nothing() -> None:
    stream = io.StringIO()
    log.configure(stream=stream)
    log.say("fetch: a.tar.gz")
    log.say("build: 2 job(s)")
    assert stream.getvalue() == "fetch: a.tar.gz\nbuild: 2 job(s)\n"
    quiet = io.StringIO()
    log.configure(enabled=False, stream=quiet)
    log.say("not shown")
    with log.step("what", "step"):
        pass
    assert quiet.getvalue() == ""


def test_say_goes_to_the_current_stderr_by_default(capsys) -> None:
    log.configure()
    log.say("to stderr")
    captured = capsys.readouterr()
    assert captured.err == "to stderr\n" and captured.out == ""


def test_step_line_is_parsed_by_the_cold_start_benchmark() -> None:
    stream = io.StringIO()
    log.configure(stream=stream, tty=False)
    with log.step("musl-cpython-3.11-x86_64", "make -j2"):
        pass
    (line,) = stream.getvalue().splitlines()
    match = STEP.match(line)
    assert match, line
    assert match["what"] == "musl-cpython-3.11-x86_64" and match["step"] == "make -j2"
    assert match["seconds"] == "0"


def test_a_failed_step_prints_no_done_line_and_leaves_the_running_list() -> None:
    stream = io.StringIO()
    log.configure(stream=stream, tty=False)
    with pytest.raises(RuntimeError), log.step("zlib", "configure"):
        assert [r[:2] for r in log.running()] == [("zlib", "configure")]
        raise RuntimeError("configure failed")
    assert stream.getvalue() == "" and log.running() == []


def test_piped_heartbeat_while_a_step_runs() -> None:
    stream = io.StringIO()
    log.configure(stream=stream, tty=False, heartbeat_seconds=0.05)
    with log.step("native", "make of libffi"):
        _wait_for(lambda: stream.getvalue().count("still running") >= 2)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "native: make of libffi: still running, 0 s"
    assert STEP.match(lines[-1]) and "\r" not in stream.getvalue()
    count = len(lines)
    time.sleep(0.2)  # the heartbeat stops with the step
    assert len(stream.getvalue().splitlines()) == count


def test_run_beats_while_the_command_runs_and_keeps_the_runner_hook(tmp_path: Path) -> None:
    stream = io.StringIO()
    log.configure(stream=stream, tty=False, heartbeat_seconds=0.05)
    result = log.run(
        [sys.executable, "-c", "import time, sys; time.sleep(0.3); print('made'); sys.exit(3)"],
        cwd=tmp_path,
        env={},
        label="configure of zlib",
        prefix="native",
    )
    assert result.returncode == 3 and result.stdout == "made\n"
    assert "native: configure of zlib: still running, 0 s" in stream.getvalue().splitlines()
    assert "done in" not in stream.getvalue()  # run() beats; the line saying what ran is the caller's
    called = []

    def runner() -> subprocess.CompletedProcess[str]:
        called.append(True)
        return subprocess.CompletedProcess(["sandboxed"], 0, "out", "")

    assert log.run(["not-run"], cwd=tmp_path, env={}, label="x", runner=runner).stdout == "out"
    assert called == [True]


def test_muted_holds_for_its_own_thread_only() -> None:
    stream = io.StringIO()
    log.configure(stream=stream, tty=False, heartbeat_seconds=0.05)
    inside = threading.Event()
    spoken = threading.Event()

    def quiet_worker() -> None:
        with log.muted():
            log.say("muted line")
            inside.set()
            spoken.wait(5)
            with log.step("muted", "step"):  # no heartbeat, no done line either
                time.sleep(0.15)
            log.say("muted line 2")
        log.say("after muted")

    worker = threading.Thread(target=quiet_worker)
    worker.start()
    inside.wait(5)
    log.say("from the main thread while the worker is muted")
    spoken.set()
    worker.join(5)
    assert stream.getvalue().splitlines() == ["from the main thread while the worker is muted", "after muted"]
    assert not log.is_muted()


def test_tty_draws_a_status_line_and_clears_it() -> None:
    terminal = Terminal()
    log.configure(stream=terminal, refresh_seconds=0.05, heartbeat_seconds=0.05)
    assert log.is_tty
    with log.step("musl-cpython-3.11-x86_64", "make"):
        _wait_for(lambda: terminal.getvalue().count("running: musl-cpython-3.11-x86_64 make") >= 2)
        log.say("runtimes: a plain line")
    text = terminal.getvalue()
    assert text.startswith(CLEAR + "running: musl-cpython-3.11-x86_64 make 0 s")
    # The plain line replaces the status line (cleared first) and the status line is drawn again below it.
    assert CLEAR + "runtimes: a plain line\n" + CLEAR + "running: musl-cpython-3.11-x86_64 make" in text
    assert "still running" not in text  # on a terminal the status line is the heartbeat
    # Once the step ends the status line is gone: the last line is the step's own, nothing drawn after it.
    assert text.endswith(CLEAR + "musl-cpython-3.11-x86_64: make done in 0 s\n")
    time.sleep(0.15)
    assert terminal.getvalue() == text  # the painter stopped with the last step


def test_tty_status_line_lists_steps_running_in_parallel_threads() -> None:
    terminal = Terminal()
    log.configure(stream=terminal, refresh_seconds=0.05)
    both = threading.Barrier(3)
    finish = threading.Event()

    def background(what: str, step: str) -> None:
        with log.step(what, step):
            both.wait(5)
            finish.wait(5)

    threads = [
        threading.Thread(target=background, args=("musl-cpython-3.11-x86_64", "make")),
        threading.Thread(target=background, args=("cffi-1.17.1 musllinux_1_2_x86_64 cp311", "build")),
    ]
    for thread in threads:
        thread.start()
    both.wait(5)

    def drawn_with_both() -> bool:
        lines = terminal.getvalue().split(CLEAR)
        return any(
            line.startswith("running: ") and " | " in line and "musl-cpython-3.11-x86_64 make" in line
            and "cffi-1.17.1 musllinux_1_2_x86_64 cp311 build" in line
            for line in lines
        )  # fmt: skip

    _wait_for(drawn_with_both)
    finish.set()
    for thread in threads:
        thread.join(5)
    assert log.running() == []
    text = terminal.getvalue()
    for done in ("musl-cpython-3.11-x86_64: make", "cffi-1.17.1 musllinux_1_2_x86_64 cp311: build"):
        assert re.search(re.escape(CLEAR + done) + r" done in \d+ s\n", text), done
    assert text.endswith(" s\n")  # no status line left drawn


def test_the_status_line_is_gone_when_a_command_ends_with_steps_still_running() -> None:
    terminal = Terminal()
    log.configure(stream=terminal, refresh_seconds=0.05)
    release = threading.Event()
    started = threading.Event()

    def background() -> None:
        with log.step("musl-cpython-3.11-x86_64", "make"):
            started.set()
            release.wait(5)

    thread = threading.Thread(target=background)
    with pytest.raises(RuntimeError), log.command():
        thread.start()
        started.wait(5)
        _wait_for(lambda: "running: musl-cpython-3.11-x86_64 make" in terminal.getvalue())
        raise RuntimeError("the command failed")
    assert terminal.getvalue().endswith(CLEAR)  # the error line that follows starts on a clean line
    shown = terminal.getvalue()
    time.sleep(0.15)
    assert terminal.getvalue() == shown  # not drawn again while the background step goes on
    release.set()
    thread.join(5)
