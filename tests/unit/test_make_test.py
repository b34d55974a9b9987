"""`make test` ends by saying what did not run, and CI fails when e2e did not.

The summary is read from the JUnit reports pytest writes; these tests feed
it reports of the shapes pytest writes for a full run, a run whose MariaDB
fixture skipped (the session fixture skips every e2e test with its reason)
and a run that never reached the tests env.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import make_test  # noqa: E402

NO_MARIADB = "mariadbd, mariadb-install-db, mariadb not found: install Debian's mariadb-server (as .ci/run does)"


def _report(tmp_path: Path, env: str, cases) -> None:
    body = []
    for classname, name, outcome in cases:
        inner = {
            "passed": "",
            "failed": '<failure message="boom">boom</failure>',
            "skipped": f'<skipped type="pytest.skip" message="{NO_MARIADB}">skip</skipped>',
        }[outcome]
        body.append(f'<testcase classname="{classname}" name="{name}" time="0.1">{inner}</testcase>')
    (tmp_path / env).mkdir()
    (tmp_path / env / make_test.REPORT).write_text(
        '<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">'
        + "".join(body)
        + "</testsuite></testsuites>"
    )


def _run(tmp_path, e2e_outcome, tox_rc=0, py38=True, ci=False):
    _report(
        tmp_path,
        "tests",
        [
            ("tests.unit.test_pod_spec", "test_a", "passed"),
            ("tests.scenario.test_x", "test_b", "passed"),
            ("tests.e2e.test_notebook_flow", "test_c", e2e_outcome),
            ("tests.e2e.test_notebook_flow", "test_d", e2e_outcome),
        ],
    )
    _report(tmp_path, "charmcraft", [("tests.packing.test_packed_files", "test_e", "passed")])
    return make_test.summarize(make_test.read_reports(tmp_path), tox_rc, py38=py38, ci=ci)


def test_a_full_run_says_so(tmp_path):
    lines, rc = _run(tmp_path, "passed")
    assert rc == 0
    assert lines[-1] == "make test: FULL RUN: every suite ran and passed"
    assert "  tests      4 passed, 0 failed, 0 skipped" in lines


def test_skipped_e2e_is_named_in_the_last_lines_with_its_reason(tmp_path):
    lines, rc = _run(tmp_path, "skipped")
    assert rc == 0
    assert lines[-1].startswith("make test: PARTIAL RUN")
    assert f"make test: NOT RUN: the end-to-end suite skipped 2 of 2 tests ({NO_MARIADB})" in lines[-3:]


@pytest.mark.parametrize("outcome", ["skipped", None])
def test_under_ci_a_skipped_or_missing_e2e_fails(tmp_path, outcome):
    if outcome:
        lines, rc = _run(tmp_path, outcome, ci=True)
    else:  # tox never got to the tests env: no report at all
        lines, rc = make_test.summarize({}, 0, py38=True, ci=True)
    assert rc == 1
    assert lines[-1] == "make test: FAILED: under CI the end-to-end suite must run (install mariadb-server)"


def test_under_ci_a_full_run_passes(tmp_path):
    assert _run(tmp_path, "passed", ci=True)[1] == 0


def test_a_tox_failure_is_never_hidden(tmp_path):
    lines, rc = _run(tmp_path, "failed", tox_rc=1)
    assert rc == 1
    assert lines[-1].startswith("make test: FAILED (tox exited 1")


def test_no_python_38_is_a_partial_run(tmp_path):
    lines, rc = _run(tmp_path, "passed", py38=False)
    assert rc == 0
    assert any("py38 did not run" in line for line in lines)
    assert lines[-1].startswith("make test: PARTIAL RUN")


def test_prepare_removes_reports_of_an_earlier_run(tmp_path, monkeypatch):
    _report(tmp_path, "tests", [("tests.e2e.t", "test_a", "passed")])
    monkeypatch.setattr(make_test, "mariadb_available", lambda: None)
    make_test.prepare(tmp_path)
    assert make_test.read_reports(tmp_path) == {}


def test_prepare_without_root_says_e2e_will_be_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(make_test, "mariadb_available", lambda: NO_MARIADB)
    monkeypatch.setattr(make_test.os, "geteuid", lambda: 1000)
    make_test.prepare(tmp_path)
    assert "the end-to-end suite will be SKIPPED" in capsys.readouterr().out
