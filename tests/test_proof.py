"""Proof records: made from real verify and smoke runs (upstream wheels) and real build records (a zig build),
published beside each file, linked from the PEP 691 page only, checked by `rewheel index check`."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.index import publish
from pipeline.index.static import check_index
from pipeline.proof import PROOF_SUFFIX, prove_upstream, validate
from pipeline.util import sha256_file

TARGET = "manylinux_2_17_x86_64"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def upstream_proof(markupsafe_wheel: Path) -> dict:  # type: ignore[type-arg]
    """A real verify and a real import of PyPI's markupsafe manylinux wheel on the host's CPython 3.11."""
    return prove_upstream(
        markupsafe_wheel,
        index_url="https://reader:s3cret@packages.example.invalid/simple/markupsafe/?token=abc#frag",
        target=TARGET,
        python="3.11",
    )


@pytest.fixture
def proven_index(tmp_path: Path, markupsafe_wheel: Path, six_wheel: Path, upstream_proof: dict) -> Path:  # type: ignore[type-arg]
    root = tmp_path / "index"
    publish([markupsafe_wheel], str(root), target=TARGET, proofs={markupsafe_wheel: upstream_proof})
    publish([six_wheel], str(root))  # no record of its own: the publish gate's verdict is its proof
    return root


def test_an_upstream_wheel_proof_comes_from_its_own_verify_and_smoke(
    upstream_proof: dict,  # type: ignore[type-arg]
    markupsafe_wheel: Path,
) -> None:
    import jsonschema

    from pipeline.proof import schema

    jsonschema.Draft202012Validator.check_schema(schema())
    proof = upstream_proof
    assert validate(proof) == []
    assert validate({**proof, "smoke": {**proof["smoke"], "status": "fine"}}) != []  # the schema does check
    assert proof["file"]["sha256"] == sha256_file(markupsafe_wheel)
    assert proof["file"]["filename"] == markupsafe_wheel.name
    assert proof["origin"] == {
        "kind": "upstream",
        "index_url": "https://packages.example.invalid/simple/markupsafe/",  # no user, password or token
        "sha256": sha256_file(markupsafe_wheel),
    }
    (verify,) = proof["verify"]
    assert verify["target"] == TARGET and verify["ok"] is True and verify["findings"] == []
    assert verify["binaries_checked"] == 1
    smoke = proof["smoke"]
    assert smoke["status"] == "passed", smoke
    assert smoke["runtime"] and "3.11" in smoke["runtime"]
    assert {"markupsafe", "markupsafe._speedups"} <= set(smoke["imported"])
    assert proof["timestamps"]["verified"] and proof["timestamps"]["recorded"]


def test_the_json_page_links_each_proof_and_the_html_page_does_not(
    proven_index: Path, markupsafe_wheel: Path
) -> None:
    root = proven_index
    document = json.loads((root / "simple/markupsafe/index.json").read_text())
    (item,) = document["files"]
    link = item["_rewheel_proof"]
    assert link["url"] == f"../../files/markupsafe/{markupsafe_wheel.name}{PROOF_SUFFIX}"
    proof_file = root / "files/markupsafe" / (markupsafe_wheel.name + PROOF_SUFFIX)
    assert sha256_file(proof_file) == link["sha256"]
    assert json.loads(proof_file.read_text())["file"]["sha256"] == item["hashes"]["sha256"]

    # The PEP 503 page is exactly what it was before proof records: one anchor, the same attributes.
    sha = sha256_file(markupsafe_wheel)
    metadata_sha = sha256_file(root / "files/markupsafe" / (markupsafe_wheel.name + ".metadata"))
    expected = "\n".join([
        "<!DOCTYPE html>", "<html>", "  <head>",
        '    <meta name="pypi:repository-version" content="1.1">',
        "    <title>Links for markupsafe</title>", "  </head>", "  <body>",
        "    <h1>Links for markupsafe</h1>",
        f'    <a href="../../files/markupsafe/{markupsafe_wheel.name}#sha256={sha}" data-requires-python="&gt;=3.7" '
        f'data-core-metadata="sha256={metadata_sha}">{markupsafe_wheel.name}</a><br>',
        "  </body>", "</html>", "",
    ])  # fmt: skip
    assert (root / "simple/markupsafe/index.html").read_text() == expected

    six = json.loads((root / "simple/six/index.json").read_text())["files"][0]
    six_proof = json.loads((root / "files/six" / (six["filename"] + PROOF_SUFFIX)).read_text())
    assert validate(six_proof) == []
    assert six_proof["origin"]["kind"] == "published"
    assert six_proof["verify"][0]["by"] == "verify_wheel:any" and six_proof["smoke"]["status"] == "not-run"
    assert check_index(root) == []


def test_index_check_covers_proof_records(proven_index: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    root = proven_index
    proof_file = next((root / "files/markupsafe").glob("*" + PROOF_SUFFIX))
    original = proof_file.read_bytes()

    proof_file.write_bytes(original.replace(b'"status": "passed"', b'"status": "failed"'))
    problems = check_index(root)
    assert problems == [
        f"markupsafe: ../../files/markupsafe/{proof_file.name} does not have the advertised sha256"
    ]

    # A record with the right hash on the page but naming another file's sha256: check recomputes both.
    other = json.loads(original)
    other["file"]["sha256"] = "0" * 64
    forged = json.dumps(other).encode()
    proof_file.write_bytes(forged)
    page = root / "simple/markupsafe/index.json"
    document = json.loads(page.read_text())
    document["files"][0]["_rewheel_proof"]["sha256"] = hashlib.sha256(forged).hexdigest()
    page.write_text(json.dumps(document))
    (problem,) = check_index(root)
    assert "is the proof of" in problem and "not of this file" in problem

    proof_file.unlink()
    (problem,) = check_index(root)
    assert problem.endswith("(proof record) does not exist")
    code, out, _ = run_cli("index", "check", str(root))
    assert code == 1 and "(proof record) does not exist" in out


def test_files_published_before_proof_records_are_a_warning_and_get_one_when_published_again(
    proven_index: Path,
    six_wheel: Path,
    run_cli,  # type: ignore[no-untyped-def]
) -> None:
    root = proven_index
    (root / "files/six" / (six_wheel.name + PROOF_SUFFIX)).unlink()
    code, out, _ = run_cli("index", "rebuild", str(root))  # what an index from before this change looks like
    assert code == 0
    assert "_rewheel_proof" not in (root / "simple/six/index.json").read_text()
    code, out, _ = run_cli("index", "check", str(root), "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["problems"] == []
    assert report["warnings"] == [f"six: {six_wheel.name}: no proof record"]
    assert "no proof record" in (root / "index.html").read_text()

    publish([six_wheel], str(root))  # the same bytes again: unchanged, and now with a proof record
    assert "_rewheel_proof" in (root / "simple/six/index.json").read_text()
    warnings: list[str] = []
    assert check_index(root, warnings) == [] and warnings == []


def test_rewheel_report_prints_the_matrix(proven_index: Path, markupsafe_wheel: Path, run_cli) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = run_cli("report", str(proven_index), "--json")
    assert code == 0
    matrix = json.loads(out)
    assert matrix["projects"] == ["markupsafe", "six"]
    by_name = {f["filename"]: f for f in matrix["files"]}
    markupsafe = by_name[markupsafe_wheel.name]
    assert (markupsafe["target"], markupsafe["python"], markupsafe["state"]) == (TARGET, "3.11", "proven")
    assert markupsafe["origin"] == "upstream" and markupsafe["verified"] and markupsafe["imported"]
    six = next(f for f in matrix["files"] if f["project"] == "six")
    assert (six["target"], six["python"], six["state"]) == ("any", "any", "partial")
    assert six["why_not"].startswith("published without a build record")

    code, out, _ = run_cli("report", str(proven_index))
    assert code == 0
    row = next(line for line in out.splitlines() if line.startswith("markupsafe"))
    assert TARGET in row and "upstream, verified, imported" in row
    assert out.rstrip().endswith("2 package(s), 2 file(s), 1 verified and imported")

    code, _, err = run_cli("report", str(proven_index / "nowhere"))
    assert code == 2 and err.count("\n") == 1 and "not an index root" in err


@pytest.mark.slow
def test_a_built_wheel_proof_comes_from_its_build_record(tmp_path: Path) -> None:
    """zig builds markupsafe for musllinux_1_2_x86_64; the orchestrator verifies it and imports it on a musl
    CPython with the recipe's test command; `rewheel publish` turns the build record into the proof record."""
    from conftest import ensure_runtime, zig_build_job

    ensure_runtime("musl-cpython-3.11-x86_64")
    recipe = PROJECT_ROOT / "recipes/markupsafe.toml"
    wheelhouse = tmp_path / "wheelhouse"
    job = zig_build_job(recipe, "musllinux_1_2_x86_64", wheelhouse)
    (wheel_path,) = job["wheels"]
    wheel = Path(wheel_path)
    record = json.loads((wheel.parent / (wheel.name + ".build.json")).read_text())

    root = tmp_path / "index"
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline", "publish", str(wheel), "--to", str(root), "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    proof = json.loads((root / "files/markupsafe" / (wheel.name + PROOF_SUFFIX)).read_text())
    assert validate(proof) == []
    assert proof["file"]["sha256"] == sha256_file(wheel) == record["wheel"]["sha256"]
    assert proof["origin"]["kind"] == "built" and proof["origin"]["job"] == record["job"]["id"]
    assert proof["target"] == "musllinux_1_2_x86_64" and proof["python"] == "3.11"
    assert proof["recipe"]["sha256"] == sha256_file(recipe)
    assert proof["recipe"]["path"] == "recipes/markupsafe.toml"  # not the build machine's absolute path
    assert proof["source"]["sha256"] == "d283d37a890ba4c1ae73ffadf8046435c76e7bc2247bbb63c00bd1a709c6544b"
    assert proof["build"]["backend"] == "zig"
    assert proof["build"]["tool_versions"]["auditwheel"] == record["tool_versions"]["auditwheel"]
    assert proof["build"]["repair"]["tool"] == "auditwheel"
    assert proof["verify"][0]["ok"] is True and proof["verify"][0]["target"] == "musllinux_1_2_x86_64"
    smoke = proof["smoke"]
    assert smoke["status"] == "passed" and smoke["runtime"] == "musl-cpython-3.11-x86_64", smoke
    assert "markupsafe._speedups" in smoke["imported"]
    assert smoke["command"] and "markupsafe.escape" in smoke["command"]
    assert proof["timestamps"]["built"] == record["built_at"]

    # The wheelhouse's own copy of the record travels too: a proof file beside the wheel is taken as is.
    copy = tmp_path / "again"
    copy.mkdir()
    shutil.copy(wheel, copy / wheel.name)
    (copy / (wheel.name + PROOF_SUFFIX)).write_text(json.dumps(proof))
    other_root = tmp_path / "index2"
    publish([copy / wheel.name], str(other_root), verified={copy / wheel.name: True})
    assert json.loads((other_root / "files/markupsafe" / (wheel.name + PROOF_SUFFIX)).read_text()) == proof


@pytest.mark.slow
def test_build_r_publishes_built_and_upstream_wheels_each_with_its_proof(tmp_path: Path) -> None:
    """`rewheel build -r`: markupsafe 2.1.1 has no musllinux wheel upstream (built here by zig, its recipe
    written on the fly), six is upstream; both enter the index with their own proof record."""
    from conftest import ensure_runtime

    ensure_runtime("musl-cpython-3.11-x86_64")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("markupsafe==2.1.1\nsix==1.16.0\n")
    index = tmp_path / "index"
    completed = subprocess.run(
        [sys.executable, "-m", "pipeline", "build", "-r", str(requirements), "--target", "musllinux_1_2_x86_64",
         "--python", "3.11", "--backend", "zig", "--publish", str(index), "--wheelhouse", str(tmp_path / "wh"),
         "--new-recipes", str(tmp_path / "recipes-new"), "--json"],
        capture_output=True, text=True, timeout=1800, cwd=PROJECT_ROOT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-4000:]
    proofs = {}
    for path in index.rglob("*" + PROOF_SUFFIX):
        document = json.loads(path.read_text())
        assert validate(document) == [], path
        wheel = path.with_name(path.name[: -len(PROOF_SUFFIX)])
        assert document["file"]["sha256"] == sha256_file(wheel)
        proofs[document["file"]["project"]] = document
    assert set(proofs) == {"markupsafe", "six"}
    assert proofs["markupsafe"]["origin"]["kind"] == "built"
    assert proofs["markupsafe"]["smoke"]["status"] == "passed"
    six = proofs["six"]
    assert six["origin"]["kind"] == "upstream" and six["origin"]["index_url"].endswith(".whl")
    assert "@" not in six["origin"]["index_url"].split("/")[2]
    assert six["verify"][0] == {
        **six["verify"][0],
        "target": "musllinux_1_2_x86_64",
        "ok": True,
        "by": "build -r",
    }
    assert six["smoke"]["status"] == "passed" and six["smoke"]["runtime"] == "musl-cpython-3.11-x86_64"
    assert six["smoke"]["imported"] == ["six"]
    warnings: list[str] = []
    assert check_index(index, warnings) == [] and warnings == []
