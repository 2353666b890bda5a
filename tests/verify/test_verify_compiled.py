"""The symbol checker against small binaries compiled here, one per finding code.

Each test compiles a tiny C extension (gcc, musl-gcc, mingw-w64 gcc), packs it into a wheel with a correct
RECORD, and checks that `verify_wheel` names the file, library and symbol the loader would complain about,
and that a clean counterpart passes, so no test can pass by reporting nothing or everything.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from conftest import need_executable, need_toolset
from pipeline.verify import WheelReport, verify_wheel

MINGW = "x86_64-w64-mingw32-gcc"
DLLTOOL = "x86_64-w64-mingw32-dlltool"


# ---- helpers --------------------------------------------------------------------------------------------


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def make_wheel(
    out: Path,
    tag: str,
    files: dict[str, bytes],
    *,
    name: str = "demo",
    version: str = "1.0",
    wheel_file_tag: str | None = None,
    tamper: dict[str, bytes] | None = None,
    raw_members: dict[str, bytes] | None = None,
) -> Path:
    """A wheel with a correct WHEEL and RECORD; `tamper` replaces contents after RECORD is written and
    `raw_members` adds members RECORD does not list (for the negative tests)."""
    dist_info = f"{name}-{version}.dist-info"
    members = dict(files)
    members[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    purelib = "true" if tag.endswith("-any") else "false"
    members[f"{dist_info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: rewheel-tests\nRoot-Is-Purelib: {purelib}\nTag: {wheel_file_tag or tag}\n"
    ).encode()
    record = [record_line(n, d) for n, d in members.items()] + [f"{dist_info}/RECORD,,"]
    members[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    members.update(tamper or {})
    path = out / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in {**members, **(raw_members or {})}.items():
            archive.writestr(member, data)
    return path


def compile_shared(compiler: str, source: str, out: Path, *args: str) -> bytes:
    c_file = out.with_suffix(".c")
    c_file.write_text(source)
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O1", "-o", str(out), str(c_file), *args],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def codes(report: WheelReport) -> set[str]:
    return {f.code for f in report.findings}


def only(report: WheelReport, code: str):  # type: ignore[no-untyped-def]
    found = [f for f in report.findings if f.code == code]
    assert found, f"expected {code}, got {[(f.code, f.message) for f in report.findings]}"
    return found


@pytest.fixture(scope="module")
def gcc() -> str:
    return need_executable("gcc", "Debian package gcc")


@pytest.fixture(scope="module")
def musl_gcc() -> str:
    need_toolset("musl")
    return need_executable("musl-gcc", "Debian package musl-tools")


@pytest.fixture(scope="module")
def mingw() -> str:
    need_toolset("mingw")
    need_executable(DLLTOOL, "Debian package binutils-mingw-w64-x86-64")
    return need_executable(MINGW, "Debian package gcc-mingw-w64-x86-64")


# ---- glibc --------------------------------------------------------------------------------------------

NEW_GLIBC = "#include <sys/random.h>\nlong ext(void *b){return getrandom(b, 4, 0);}\n"  # GLIBC_2.25
OLD_GLIBC = "#include <string.h>\nlong ext(char *b){return (long)strlen(b);}\n"


def test_too_new_glibc_symbol_is_named_with_its_version(tmp_path: Path, gcc: str) -> None:
    so = compile_shared(gcc, NEW_GLIBC, tmp_path / "new.so")
    wheel = make_wheel(
        tmp_path, "cp311-cp311-manylinux_2_17_x86_64", {"demo/_ext.cpython-311-x86_64-linux-gnu.so": so}
    )
    report = verify_wheel(wheel, "manylinux_2_17_x86_64")
    finding = only(report, "too-new-symbol-version")[0]
    assert finding.symbol == "getrandom@GLIBC_2.25"
    assert finding.library == "libc.so.6" and finding.file == "demo/_ext.cpython-311-x86_64-linux-gnu.so"
    assert "2.17" in finding.message and not report.ok
    # the same binary is fine where the policy allows glibc 2.28 (the wheel tag then has to say so too)
    wheel_228 = make_wheel(
        tmp_path, "cp311-cp311-manylinux_2_28_x86_64", {"demo/_ext.cpython-311-x86_64-linux-gnu.so": so}
    )
    assert verify_wheel(wheel_228, "manylinux_2_28_x86_64").ok


def test_old_glibc_symbols_pass(tmp_path: Path, gcc: str) -> None:
    so = compile_shared(gcc, OLD_GLIBC, tmp_path / "old.so")
    wheel = make_wheel(
        tmp_path, "cp311-cp311-manylinux_2_17_x86_64", {"demo/_ext.cpython-311-x86_64-linux-gnu.so": so}
    )
    report = verify_wheel(wheel, "manylinux_2_17_x86_64")
    assert report.ok and report.findings == [] and report.binaries == 1


def test_missing_and_bundled_needed_library(tmp_path: Path, gcc: str) -> None:
    lib = compile_shared(
        gcc, "int helper(void){return 42;}\n", tmp_path / "libhelper.so", "-Wl,-soname,libhelper-ab12.so"
    )
    shutil.copy(tmp_path / "libhelper.so", tmp_path / "libhelper-ab12.so")
    ext = compile_shared(
        gcc, "int helper(void);\nint ext(void){return helper();}\n", tmp_path / "ext.so",
        f"-L{tmp_path}", "-l:libhelper-ab12.so", "-Wl,--disable-new-dtags,-rpath,$ORIGIN/../demo.libs",
    )  # fmt: skip
    name = "demo/_ext.cpython-311-x86_64-linux-gnu.so"
    missing = make_wheel(tmp_path, "cp311-cp311-manylinux_2_17_x86_64", {name: ext})
    finding = only(verify_wheel(missing, "manylinux_2_17_x86_64"), "missing-library")[0]
    assert finding.library == "libhelper-ab12.so" and finding.file == name
    bundled = make_wheel(
        tmp_path,
        "cp311-cp311-manylinux_2_17_x86_64",
        {name: ext, "demo.libs/libhelper-ab12.so": lib},
        name="ok",
    )
    assert verify_wheel(bundled, "manylinux_2_17_x86_64").ok
    misplaced = make_wheel(
        tmp_path,
        "cp311-cp311-manylinux_2_17_x86_64",
        {name: ext, "elsewhere/libhelper-ab12.so": lib},
        name="mis",
    )
    assert (
        "not on the RPATH"
        in only(verify_wheel(misplaced, "manylinux_2_17_x86_64"), "missing-library")[0].message
    )


# ---- musl -----------------------------------------------------------------------------------------------

GLIBC_ONLY = "#include <gnu/libc-version.h>\nconst char *ext(void){return gnu_get_libc_version();}\n"


def test_glibc_built_extension_on_musl_names_glibc_only_symbols(tmp_path: Path, gcc: str) -> None:
    so = compile_shared(gcc, GLIBC_ONLY, tmp_path / "g.so")
    wheel = make_wheel(
        tmp_path, "cp311-cp311-musllinux_1_2_x86_64", {"demo/_ext.cpython-311-x86_64-linux-musl.so": so}
    )
    report = verify_wheel(wheel, "musllinux_1_2_x86_64")
    findings = only(report, "glibc-on-musl")
    assert any(f.library == "libc.so.6" for f in findings)
    assert any("gnu_get_libc_version" in (f.symbol or "") for f in findings)


def test_musl_extension_passes_and_unknown_symbol_is_named(tmp_path: Path, musl_gcc: str) -> None:
    clean = compile_shared(musl_gcc, OLD_GLIBC, tmp_path / "m.so")
    name = "demo/_ext.cpython-311-x86_64-linux-musl.so"
    good = make_wheel(tmp_path, "cp311-cp311-musllinux_1_2_x86_64", {name: clean}, name="good")
    report = verify_wheel(good, "musllinux_1_2_x86_64")
    assert report.ok, [f.message for f in report.findings]
    # __cxa_thread_atexit_impl is glibc-only; musl's libc.so does not export it
    odd = compile_shared(
        musl_gcc,
        "extern int __cxa_thread_atexit_impl(void*,void*,void*);\nint ext(void){return __cxa_thread_atexit_impl(0,0,0);}\n",
        tmp_path / "o.so",
    )
    bad = make_wheel(tmp_path, "cp311-cp311-musllinux_1_2_x86_64", {name: odd}, name="bad")
    assert "__cxa_thread_atexit_impl" in (
        only(verify_wheel(bad, "musllinux_1_2_x86_64"), "glibc-on-musl")[0].symbol or ""
    )
    weird = compile_shared(
        musl_gcc,
        "extern int no_such_function_anywhere(void);\nint ext(void){return no_such_function_anywhere();}\n",
        tmp_path / "w.so",
    )
    bad2 = make_wheel(tmp_path, "cp311-cp311-musllinux_1_2_x86_64", {name: weird}, name="bad2")
    finding = only(verify_wheel(bad2, "musllinux_1_2_x86_64"), "missing-symbol")[0]
    assert finding.symbol == "no_such_function_anywhere" and "symbol not found" in finding.message


# ---- Python ABI -----------------------------------------------------------------------------------------


def test_abi3_violation_and_python_version_symbols(tmp_path: Path, gcc: str) -> None:
    # PyType_GetName joined the stable ABI in 3.11: an abi3 wheel claiming 3.7 may not use it.
    source = "extern void *PyType_GetName(void*);\nvoid *ext(void *o){return PyType_GetName(o);}\n"
    so = compile_shared(gcc, source, tmp_path / "a.so")
    wheel = make_wheel(tmp_path, "cp37-abi3-manylinux_2_17_x86_64", {"demo/_ext.abi3.so": so})
    finding = only(verify_wheel(wheel, "manylinux_2_17_x86_64"), "abi3-violation")[0]
    assert finding.symbol == "PyType_GetName" and "3.7" in finding.message
    ok = make_wheel(tmp_path, "cp311-abi3-manylinux_2_17_x86_64", {"demo/_ext.abi3.so": so}, name="ok")
    assert verify_wheel(ok, "manylinux_2_17_x86_64").ok
    # PyErr_GetRaisedException exists from CPython 3.12: a cp311 extension using it fails at import
    new_api = compile_shared(
        gcc,
        "extern void *PyErr_GetRaisedException(void);\nvoid *ext(void){return PyErr_GetRaisedException();}\n",
        tmp_path / "n.so",
    )
    cp311 = make_wheel(
        tmp_path,
        "cp311-cp311-manylinux_2_17_x86_64",
        {"demo/_ext.cpython-311-x86_64-linux-gnu.so": new_api},
        name="n311",
    )
    assert (
        only(verify_wheel(cp311, "manylinux_2_17_x86_64"), "missing-python-symbol")[0].symbol
        == "PyErr_GetRaisedException"
    )
    cp312 = make_wheel(
        tmp_path,
        "cp312-cp312-manylinux_2_17_x86_64",
        {"demo/_ext.cpython-312-x86_64-linux-gnu.so": new_api},
        name="n312",
    )
    assert verify_wheel(cp312, "manylinux_2_17_x86_64").ok


# ---- Windows (mingw-w64) -----------------------------------------------------------------------------

WINDOW = '#include <windows.h>\n__declspec(dllexport) int ext(void){return CreateWindowExA(0,"a","b",0,0,0,0,0,0,0,0,0)!=0;}\n'


def mingw_dll(mingw: str, source: str, out: Path, *args: str) -> bytes:
    c_file = out.with_suffix(".c")
    c_file.write_text(source)
    subprocess.run(
        [mingw, "-shared", "-O1", "-o", str(out), str(c_file), *args], check=True, capture_output=True
    )
    return out.read_bytes()


def import_lib(tmp_path: Path, dll: str, functions: list[str], *, delay: bool = False) -> Path:
    stem = dll.rsplit(".", 1)[0]
    definition = tmp_path / f"{stem}.def"
    definition.write_text(f"LIBRARY {dll}\nEXPORTS\n" + "\n".join(functions) + "\n")
    library = tmp_path / f"lib{stem}{'_delay' if delay else ''}.a"
    option = "--output-delaylib" if delay else "--output-lib"
    subprocess.run(
        [DLLTOOL, "--input-def", str(definition), option, str(library)], check=True, capture_output=True
    )
    return library


def test_missing_pe_function_on_nano_server(tmp_path: Path, mingw: str) -> None:
    pyd = mingw_dll(mingw, WINDOW, tmp_path / "w.pyd", "-luser32")
    wheel = make_wheel(tmp_path, "cp311-cp311-win_amd64", {"demo/_ext.cp311-win_amd64.pyd": pyd})
    nano = verify_wheel(wheel, "win_amd64-nanoserver")
    finding = only(nano, "missing-function")[0]
    assert (finding.library.lower(), finding.symbol) == ("user32.dll", "CreateWindowExA")
    assert not nano.ok
    desktop = verify_wheel(wheel, "win_amd64")
    assert desktop.ok, [f.message for f in desktop.findings]


def set_delay_import_directory(path: Path) -> bytes:
    """GNU ld links dlltool's delay-import descriptor but leaves the PE's delay-import data directory
    empty (MSVC's link.exe and lld fill it in). Point the directory at the descriptor, as those linkers do,
    so the file looks like what MSVC-built wheels contain."""
    import pefile

    symbols = subprocess.run(
        [MINGW.replace("gcc", "nm"), str(path)], capture_output=True, text=True, check=True
    ).stdout
    address = next(
        int(line.split()[0], 16) for line in symbols.splitlines() if "__DELAY_IMPORT_DESCRIPTOR_" in line
    )
    pe = pefile.PE(str(path))
    directory = pe.OPTIONAL_HEADER.DATA_DIRECTORY[
        pefile.DIRECTORY_ENTRY["IMAGE_DIRECTORY_ENTRY_DELAY_IMPORT"]
    ]
    directory.VirtualAddress = address - pe.OPTIONAL_HEADER.ImageBase
    directory.Size = 32  # one ImgDelayDescr
    data = bytes(pe.write())
    pe.close()
    return data


def test_delay_load_is_a_warning(tmp_path: Path, mingw: str) -> None:
    lib = import_lib(tmp_path, "USER32.dll", ["CreateWindowExA"], delay=True)
    mingw_dll(mingw, WINDOW, tmp_path / "d.pyd", str(lib))
    pyd = set_delay_import_directory(tmp_path / "d.pyd")
    wheel = make_wheel(tmp_path, "cp311-cp311-win_amd64", {"demo/_ext.cp311-win_amd64.pyd": pyd})
    report = verify_wheel(wheel, "win_amd64-nanoserver")
    finding = only(report, "delay-load-missing-function")[0]
    assert finding.severity == "warning" and finding.symbol == "CreateWindowExA"
    assert report.ok  # lazily bound: the module still imports


def test_bundled_dll_must_export_the_function(tmp_path: Path, mingw: str) -> None:
    helper = mingw_dll(
        mingw, "__declspec(dllexport) int helper(void){return 1;}\n", tmp_path / "helper-1a2b.dll"
    )
    lib = import_lib(tmp_path, "helper-1a2b.dll", ["helper", "absent_function"])
    pyd = mingw_dll(
        mingw,
        "int helper(void); int absent_function(void);\n__declspec(dllexport) int ext(void){return helper()+absent_function();}\n",
        tmp_path / "b.pyd",
        str(lib),
    )
    wheel = make_wheel(
        tmp_path,
        "cp311-cp311-win_amd64",
        {"demo/_ext.cp311-win_amd64.pyd": pyd, "demo.libs/helper-1a2b.dll": helper},
    )
    finding = only(verify_wheel(wheel, "win_amd64"), "missing-function")[0]
    assert (finding.library, finding.symbol) == ("helper-1a2b.dll", "absent_function")
    alone = make_wheel(
        tmp_path, "cp311-cp311-win_amd64", {"demo/_ext.cp311-win_amd64.pyd": pyd}, name="alone"
    )
    assert only(verify_wheel(alone, "win_amd64"), "missing-dll")[0].library == "helper-1a2b.dll"


def test_python_dll_must_match_the_tag(tmp_path: Path, mingw: str) -> None:
    lib312 = import_lib(tmp_path, "python312.dll", ["PyLong_FromLong"])
    source = (
        "void *PyLong_FromLong(long);\n__declspec(dllexport) void *ext(void){return PyLong_FromLong(1);}\n"
    )
    pyd = mingw_dll(mingw, source, tmp_path / "p.pyd", str(lib312))
    wheel = make_wheel(tmp_path, "cp311-cp311-win_amd64", {"demo/_ext.cp311-win_amd64.pyd": pyd})
    finding = only(verify_wheel(wheel, "win_amd64"), "python-dll-mismatch")[0]
    assert finding.library == "python312.dll"
    right = make_wheel(
        tmp_path, "cp312-cp312-win_amd64", {"demo/_ext.cp312-win_amd64.pyd": pyd}, name="right"
    )
    assert verify_wheel(right, "win_amd64").ok
    abi3 = make_wheel(tmp_path, "cp38-abi3-win_amd64", {"demo/_ext.pyd": pyd}, name="abi3")
    assert "python3.dll" in only(verify_wheel(abi3, "win_amd64"), "python-dll-mismatch")[0].message


def test_wrong_machine_pe(tmp_path: Path, mingw: str) -> None:
    pyd = mingw_dll(mingw, "__declspec(dllexport) int ext(void){return 1;}\n", tmp_path / "m.pyd")
    wheel = make_wheel(tmp_path, "cp311-cp311-win_arm64", {"demo/_ext.cp311-win_arm64.pyd": pyd})
    finding = only(verify_wheel(wheel, "win_arm64"), "wrong-machine")[0]
    assert "AMD64" in finding.message and finding.file == "demo/_ext.cp311-win_arm64.pyd"


# ---- wheel level ----------------------------------------------------------------------------------------


def test_record_mismatch_unsafe_path_and_tag_mismatch(tmp_path: Path) -> None:
    files = {"demo/__init__.py": b"x = 1\n"}
    clean = make_wheel(tmp_path, "py3-none-any", files, name="clean")
    assert verify_wheel(clean, "any").findings == []
    tampered = make_wheel(
        tmp_path, "py3-none-any", files, name="tampered", tamper={"demo/__init__.py": b"x = 2\n"}
    )
    assert only(verify_wheel(tampered, "any"), "record-hash-mismatch")[0].file == "demo/__init__.py"
    unlisted = make_wheel(
        tmp_path, "py3-none-any", files, name="unlisted", raw_members={"demo/extra.py": b""}
    )
    assert "not listed in RECORD" in only(verify_wheel(unlisted, "any"), "record-hash-mismatch")[0].message
    unsafe = make_wheel(tmp_path, "py3-none-any", files, name="unsafe", raw_members={"../evil.py": b"boom"})
    assert only(verify_wheel(unsafe, "any"), "unsafe-path")[0].file == "../evil.py"
    lying = make_wheel(
        tmp_path, "py3-none-any", files, name="lying", wheel_file_tag="cp311-cp311-linux_x86_64"
    )
    assert "WHEEL" in only(verify_wheel(lying, "any"), "tag-mismatch")[0].message


def test_extension_suffix_must_match_python_tag(tmp_path: Path, gcc: str) -> None:
    so = compile_shared(gcc, OLD_GLIBC, tmp_path / "s.so")
    wheel = make_wheel(
        tmp_path, "cp311-cp311-manylinux_2_17_x86_64", {"demo/_ext.cpython-312-x86_64-linux-gnu.so": so}
    )
    assert "3.12" in only(verify_wheel(wheel, "manylinux_2_17_x86_64"), "python-tag-mismatch")[0].message


def test_unusable_input_exits_2_with_one_line(tmp_path: Path, run_cli, gcc: str) -> None:  # type: ignore[no-untyped-def]
    not_zip = tmp_path / "broken-1.0-py3-none-any.whl"
    not_zip.write_bytes(b"this is not a zip archive")
    code, _out, err = run_cli("verify", str(not_zip), "--target", "any")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not a readable zip" in err
    truncated_elf = b"\x7fELF\x02\x01\x01" + b"\x00" * 9 + b"\x03\x00\x3e\x00" + b"\xff" * 40
    wheel = make_wheel(
        tmp_path,
        "cp311-cp311-manylinux_2_17_x86_64",
        {"demo/_ext.cpython-311-x86_64-linux-gnu.so": truncated_elf},
    )
    code, _out, err = run_cli("verify", str(wheel), "--target", "manylinux_2_17_x86_64")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "malformed ELF" in err
    code, _out, err = run_cli("verify", str(wheel), "--target", "no-such-target")
    assert code == 2 and "unknown target" in err
