"""Target identity in one place: tag parsing, what a target accepts, which target a wheel is for, which
runtime hosts which target, and musl targets as tag + runtime profile (default and legacy 1.2.3)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import unavailable
from pipeline.targets import (
    PolicyPlatform,
    catalogue,
    get_target,
    hosts,
    musl_profiles,
    parse_platform,
    target_for_tags,
    targets_for_tags,
)
from pipeline.verify.wheelname import wheel_tags


def test_policy_tags_parse_once_including_auditwheels_aliases() -> None:
    assert parse_platform("manylinux2014_aarch64") == PolicyPlatform("manylinux", (2, 17), "aarch64")
    assert parse_platform("manylinux2010_i686") == PolicyPlatform("manylinux", (2, 12), "i686")
    assert parse_platform("manylinux1_x86_64") == PolicyPlatform("manylinux", (2, 5), "x86_64")
    assert parse_platform("manylinux_2_28_x86_64") == PolicyPlatform("manylinux", (2, 28), "x86_64")
    musl = parse_platform("musllinux_1_1_x86_64")
    assert musl == PolicyPlatform("musllinux", (1, 1), "x86_64")
    assert musl is not None and musl.libc == "musl" and musl.policy == "musllinux_1_1"
    for other in ("linux_x86_64", "win_amd64", "any", "macosx_11_0_arm64", "manylinux2015_x86_64"):
        assert parse_platform(other) is None, other


def test_accepts_older_levels_of_the_same_libc_and_arch() -> None:
    glibc = get_target("manylinux_2_17_x86_64")
    assert glibc.accepts("manylinux_2_5_x86_64") and glibc.accepts("manylinux1_x86_64")
    assert glibc.accepts("manylinux2014_x86_64") and glibc.accepts("manylinux_2_17_x86_64")
    assert not glibc.accepts("manylinux_2_28_x86_64")
    assert not glibc.accepts("manylinux_2_17_aarch64") and not glibc.accepts("musllinux_1_1_x86_64")
    assert not glibc.accepts("linux_x86_64")
    assert glibc.accepts("any")  # a pure wheel installs everywhere
    musl = get_target("musllinux_1_2_aarch64")
    assert musl.accepts("musllinux_1_1_aarch64") and not musl.accepts("musllinux_1_2_x86_64")
    assert not musl.accepts("manylinux_2_17_aarch64")
    # the legacy profile accepts the same tags: it differs in what the loader provides, not in the tag
    assert get_target("musllinux_1_2_aarch64-musl1.2.3").accepts("musllinux_1_1_aarch64")
    assert get_target("win_amd64-nanoserver").accepts("win_amd64")
    assert not get_target("win_amd64").accepts("win32")
    assert get_target("any").accepts("any") and not get_target("any").accepts("win_amd64")
    assert get_target("manylinux_2_17_x86_64").accepts_any(["win_amd64", "manylinux1_x86_64"])


def _tags(filename: str) -> frozenset:  # type: ignore[type-arg]
    return wheel_tags(filename)


def test_target_for_tags_one_rule() -> None:
    """Per claim, the first target in catalogue order that accepts it (the oldest claimed level decides),
    in the asked channel (default: the target without one)."""

    def name(filename: str, channel: str | None = None) -> str:
        return target_for_tags(_tags(filename), channel).name

    assert name("a-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl") == "manylinux_2_17_x86_64"
    # a compound tag promises its oldest level
    assert name("a-1-cp311-cp311-manylinux1_x86_64.manylinux_2_5_x86_64.manylinux_2_28_x86_64.whl") == (
        "manylinux_2_5_x86_64"
    )
    # no manylinux_2_5 target for aarch64: the oldest target that accepts the claim
    assert name("a-1-cp311-cp311-manylinux_2_5_aarch64.whl") == "manylinux_2_17_aarch64"
    assert name("a-1-cp311-cp311-musllinux_1_2_aarch64.whl") == "musllinux_1_2_aarch64"
    assert name("a-1-cp311-cp311-musllinux_1_2_aarch64.whl", "musl1.2.3") == "musllinux_1_2_aarch64-musl1.2.3"
    assert name("a-1-cp311-cp311-win_amd64.whl") == "win_amd64"
    assert name("a-1-cp311-cp311-win_amd64.whl", "nanoserver") == "win_amd64-nanoserver"
    assert name("a-1-cp311-cp311-win_amd64.whl", "musl1.2.3") == "win_amd64"  # no such target: the default
    assert name("a-1-py3-none-any.whl") == "any"
    both = targets_for_tags(_tags("a-1-cp311-cp311-manylinux_2_17_x86_64.musllinux_1_1_x86_64.whl"))
    assert [t.name for t in both] == ["manylinux_2_17_x86_64", "musllinux_1_1_x86_64"]
    with pytest.raises(Exception, match="no target in the catalogue accepts"):
        target_for_tags(_tags("a-1-cp311-cp311-linux_x86_64.whl"))


def test_hosts_same_libc_arch_older_policy_and_same_musl_profile() -> None:
    def h(runtime: str, wanted: str) -> bool:
        return hosts(get_target(runtime), get_target(wanted))

    assert h("musllinux_1_2_x86_64", "musllinux_1_1_x86_64")
    assert not h("musllinux_1_1_x86_64", "musllinux_1_2_x86_64")
    assert h("musllinux_1_2_x86_64-musl1.2.3", "musllinux_1_1_x86_64-musl1.2.3")
    # a 1.2.5 loader would hide the legacy profile's DT_RELR failures, and a 1.2.3 one fails the default's wheels
    assert not h("musllinux_1_2_x86_64", "musllinux_1_2_x86_64-musl1.2.3")
    assert not h("musllinux_1_2_x86_64-musl1.2.3", "musllinux_1_2_x86_64")
    assert h("manylinux_2_36_aarch64", "manylinux_2_17_aarch64")
    assert not h("manylinux_2_17_aarch64", "manylinux_2_28_aarch64")
    assert not h("manylinux_2_36_x86_64", "manylinux_2_17_aarch64")
    assert not h("manylinux_2_36_x86_64", "musllinux_1_1_x86_64")
    assert h("win_amd64-nanoserver", "win_amd64-nanoserver") and not h("win_amd64", "win_amd64-nanoserver")


def test_musl_targets_are_tag_plus_profile() -> None:
    profiles = musl_profiles()
    default = next(p for p in profiles.values() if p.default)
    assert default.name == "musl_1_2_5" and default.musl_version == "1.2.5"
    assert {"Alpine 3.20", "Alpine 3.21", "Alpine 3.22", "Alpine 3.23"} <= set(default.stands_for)
    assert default.reviewed == "2026-12-07" and default.channel is None
    legacy = profiles["musl_1_2_3"]
    assert legacy.channel and "Alpine 3.17" in legacy.stands_for
    for policy in ("musllinux_1_1", "musllinux_1_2"):
        for arch in ("x86_64", "aarch64"):
            plain, old = get_target(f"{policy}_{arch}"), get_target(f"{policy}_{arch}-musl1.2.3")
            assert plain.platform_tag == old.platform_tag == f"{policy}_{arch}"
            assert (plain.profile, plain.musl_version, plain.channel) == ("musl_1_2_5", "1.2.5", None)
            assert (old.profile, old.musl_version, old.channel) == ("musl_1_2_3", "1.2.3", legacy.channel)
            assert "Alpine 3.23" in plain.stands_for and "Alpine 3.17" in old.stands_for
    assert get_target("manylinux_2_17_x86_64").musl_version is None
    names = list(catalogue())
    assert names.index("musllinux_1_2_x86_64") < names.index("musllinux_1_2_x86_64-musl1.2.3")


def test_targets_command_lists_the_musl_profiles(run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("targets", "--json")
    assert code == 0
    rows = {t["name"]: t for t in json.loads(out)["targets"]}
    legacy = rows["musllinux_1_2_aarch64-musl1.2.3"]
    assert legacy["musl_version"] == "1.2.3" and legacy["profile"] == "musl_1_2_3"
    assert "Alpine 3.17" in legacy["stands_for"]
    assert rows["musllinux_1_2_aarch64"]["musl_version"] == "1.2.5"
    assert "Nano Server" in rows["win_amd64-nanoserver"]["stands_for"]
    code, text, _ = run_cli("targets")
    assert code == 0 and "musllinux_1_1_x86_64-musl1.2.3" in text


def test_musl_export_lists_are_per_version() -> None:
    from pipeline.profiles import load_provenance, musl_exports

    newer, older = musl_exports("musl_1_2_5", "x86_64"), musl_exports("musl_1_2_3", "x86_64")
    assert {"statx", "preadv2", "pwritev2", "renameat2"} <= newer - older
    # musl 1.2.4 dropped the LFS64 exports, its loader still binds them (read from libc.so's own table)
    assert "fopen64" in newer and "fopen64" in older
    for name in ("musl_1_2_5", "musl_1_2_3"):
        provenance = load_provenance(name)
        assert provenance["reviewed"] == "2026-12-07" and "sha256" in provenance["source"]
        assert provenance["regenerate"].startswith(f"rewheel profiles regenerate {name}")


def _wheel_with(so: Path, out: Path, platform: str) -> Path:
    from pipeline.wheelfile import record_hash

    wheel = out / f"demo-1.0-cp311-cp311-{platform}.whl"
    members = {
        "demo/_statx.cpython-311-x86_64-linux-musl.so": so.read_bytes(),
        "demo-1.0.dist-info/WHEEL": f"Wheel-Version: 1.0\nTag: cp311-cp311-{platform}\n".encode(),
        "demo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n",
    }
    record = "".join(f"{name},{record_hash(data)},{len(data)}\n" for name, data in members.items())
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        archive.writestr("demo-1.0.dist-info/RECORD", record + "demo-1.0.dist-info/RECORD,,\n")
    return wheel


@pytest.mark.slow
def test_a_function_newer_than_the_profiles_musl_is_named(tmp_path: Path) -> None:
    """A real musl shared object (zig cc, musl 1.2.5 headers) calling statx: fine for the default profile,
    `missing-symbol` naming statx on the musl 1.2.3 profile."""
    try:
        import ziglang  # noqa: F401
    except ImportError:
        unavailable("ziglang, which compiles the musl shared object (pip install 'rewheel[zig]')")
    source = tmp_path / "statx.c"
    source.write_text(
        "#define _GNU_SOURCE\n#include <fcntl.h>\n#include <sys/stat.h>\n"
        'int probe(void) { struct statx s; return statx(AT_FDCWD, ".", 0, STATX_BASIC_STATS, &s); }\n'
    )
    so = tmp_path / "statx.so"
    result = subprocess.run(
        [sys.executable, "-m", "ziglang", "cc", "-target", "x86_64-linux-musl", "-shared", "-fPIC",
         "-o", str(so), str(source)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    from pipeline.verify import verify_wheel

    wheel = _wheel_with(so, tmp_path, "musllinux_1_2_x86_64")
    assert verify_wheel(wheel, "musllinux_1_2_x86_64").errors == []
    old = verify_wheel(wheel, "musllinux_1_2_x86_64-musl1.2.3")
    missing = [f for f in old.errors if f.code == "missing-symbol"]
    assert [f.symbol for f in missing] == ["statx"], [f.message for f in old.findings]
    assert "musl 1.2.3" in missing[0].message


def test_backends_derive_their_facts_from_the_target(run_cli) -> None:  # type: ignore[no-untyped-def]
    """cibuildwheel identifiers and zig triples come from os, arch, libc and policy, not from tables keyed
    by target name: a new policy level or musl profile needs no backend entry. The JSON keeps cibw_*."""
    from pipeline.builders.backends.cibuildwheel_ids import build_identifier, cibw_arch, cibw_platform
    from pipeline.builders.backends.zig.toolchain import builds_for, gnu_host, zig_triple

    assert (
        build_identifier(get_target("musllinux_1_2_aarch64-musl1.2.3"), "3.12") == "cp312-musllinux_aarch64"
    )
    assert build_identifier(get_target("manylinux_2_28_x86_64"), "3.11") == "cp311-manylinux_x86_64"
    nano = get_target("win_amd64-nanoserver")
    assert build_identifier(nano, "3.11") == "cp311-win_amd64"
    assert (cibw_platform(nano), cibw_arch(nano)) == ("windows", "AMD64")
    assert (
        zig_triple("musllinux_1_1_x86_64")
        == zig_triple("musllinux_1_2_x86_64-musl1.2.3")
        == "x86_64-linux-musl"
    )
    assert zig_triple("manylinux_2_17_aarch64") == "aarch64-linux-gnu.2.17"
    assert zig_triple("manylinux_2_28_x86_64") == "x86_64-linux-gnu.2.28"
    assert zig_triple("win_arm64") == "aarch64-windows-gnu" and gnu_host("win_amd64") == "x86_64-w64-mingw32"
    assert gnu_host("musllinux_1_2_aarch64") == "aarch64-linux-musl"
    assert not builds_for("win32") and not builds_for("manylinux_2_5_x86_64") and not builds_for("any")
    code, out, _ = run_cli("targets", "--json")
    assert code == 0
    rows = {t["name"]: t for t in json.loads(out)["targets"]}
    assert rows["manylinux_2_17_aarch64"]["cibw_image"] == "manylinux2014"
    assert rows["win_amd64"]["cibw_identifier"] == "win_amd64" and rows["any"]["cibw_platform"] == "none"


BCRYPT_MUSL_AARCH64 = (
    "bcrypt", "4.3.0", "bcrypt-4.3.0-cp39-abi3-musllinux_1_2_aarch64.whl",
    "e965a9c1e9a393b8005031ff52583cedc15b7884fce7deb8b0346388837d6cfe",
)  # fmt: skip


def test_upstream_bcrypt_is_clean_for_alpine_and_relr_for_musl_1_2_3(run_cli, pypi_file) -> None:  # type: ignore[no-untyped-def]
    """Issue #23's case: bcrypt 4.3.0's musllinux_1_2 aarch64 wheel grafts a libgcc_s with DT_RELR. Every
    supported Alpine loads it; musl 1.2.3 cannot. The publishing gate picks the target by channel."""
    from pipeline.index.gate import infer_target

    wheel = pypi_file(*BCRYPT_MUSL_AARCH64)
    code, out, _ = run_cli("verify", str(wheel), "--target", "musllinux_1_2_aarch64", "--json")
    assert code == 0, out
    code, out, _ = run_cli("verify", str(wheel), "--target", "musllinux_1_2_aarch64-musl1.2.3", "--json")
    assert code == 1
    findings = [f for r in json.loads(out)["results"] for f in r["findings"]]
    assert {f["code"] for f in findings} == {"relr-unsupported"}
    assert all(f["file"].startswith("bcrypt.libs/libgcc_s") for f in findings)
    assert infer_target(wheel) == "musllinux_1_2_aarch64"
    assert infer_target(wheel, "musl1.2.3") == "musllinux_1_2_aarch64-musl1.2.3"
