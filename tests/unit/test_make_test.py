"""`make test` counts every test that ran, by suite, says what did not run, and CI fails when e2e did not.

The summary is read from the JUnit reports tox.ini's pytest commands write,
one file per command under .tox/<env>/junit/; these tests feed it reports of
the shapes pytest writes for a full run, a run whose MariaDB fixture skipped
(the session fixture skips every e2e test with its reason), runs that never
reached an environment and a pytest that collected nothing.
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import make_test  # noqa: E402

NO_MARIADB = "mariadbd, mariadb-install-db, mariadb not found: install Debian's mariadb-server (as .ci/run does)"
INNER = {
    "passed": "",
    "failed": '<failure message="boom">boom</failure>',
    "skipped": f'<skipped type="pytest.skip" message="{NO_MARIADB}">skip</skipped>',
}


def _report(tox_dir: Path, env: str, name: str, cases) -> None:
    """A JUnit report as pytest writes it to .tox/<env>/junit/<name>.xml."""
    body = "".join(
        f'<testcase classname="{classname}" name="{test}" time="0.1">{INNER[outcome]}</testcase>'
        for classname, test, outcome in cases
    )
    (tox_dir / env / "junit").mkdir(parents=True, exist_ok=True)
    (tox_dir / env / "junit" / f"{name}.xml").write_text(
        f'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">{body}</testsuite></testsuites>'
    )


def _full_run(tox_dir: Path, e2e_outcome: str = "passed", skip=()) -> None:
    """The reports of `make test`'s environments, but those named in `skip`."""
    reports = {
        ("tests", "unit-scenario"): [
            ("tests.unit.test_pod_spec", "test_a", "passed"),
            ("tests.unit.test_pod_spec", "test_b", "passed"),
            ("tests.scenario.test_x", "test_c", "passed"),
        ],
        ("e2e", "e2e"): [
            ("tests.e2e.test_notebook_flow", "test_d", e2e_outcome),
            ("tests.e2e.test_notebook_flow", "test_e", e2e_outcome),
        ],
        ("py38", "unit"): [("tests.unit.test_pod_spec", "test_a", "passed")],
        ("charmcraft", "packing"): [("tests.packing.test_packed_files", "test_f", "passed")],
    }
    for (env, name), cases in reports.items():
        if env not in skip:
            _report(tox_dir, env, name, cases)


def _run(tmp_path, e2e_outcome="passed", tox_rc=0, py38=True, ci=False, skip=()):
    _full_run(tmp_path, e2e_outcome, skip)
    return make_test.summarize(make_test.read_reports(tmp_path), tox_rc, py38=py38, ci=ci)


def _row(env, suite, passed, failed, skipped):
    return f"  {env:<12}{suite:<10}{passed:>9}{failed:>9}{skipped:>9}"


def test_a_full_run_counts_every_test_by_environment_and_suite(tmp_path):
    lines, rc = _run(tmp_path)
    assert rc == 0
    assert lines[-1] == "make test: FULL RUN: every suite ran and passed"
    for row in (
        _row("tests", "unit", 2, 0, 0),
        _row("tests", "scenario", 1, 0, 0),
        _row("e2e", "e2e", 2, 0, 0),
        _row("py38", "unit", 1, 0, 0),
        _row("charmcraft", "packing", 1, 0, 0),
    ):
        assert row in lines
    assert "total: 7 passed, 0 failed, 0 skipped" in lines


def test_every_report_of_an_environment_counts(tmp_path):
    # Two pytest commands in one env used to write the same file: the second hid the first.
    _report(tmp_path, "tests", "unit-scenario", [("tests.unit.t", "test_a", "passed")] * 433)
    _report(tmp_path, "tests", "e2e", [("tests.e2e.t", "test_b", "passed")] * 41)
    lines, _ = make_test.summarize(make_test.read_reports(tmp_path), 0, py38=True, ci=False)
    assert _row("tests", "unit", 433, 0, 0) in lines
    assert _row("tests", "e2e", 41, 0, 0) in lines
    assert "total: 474 passed, 0 failed, 0 skipped" in lines


def test_skipped_e2e_is_named_in_the_last_lines_with_its_reason(tmp_path):
    lines, rc = _run(tmp_path, "skipped")
    assert rc == 0
    assert lines[-1].startswith("make test: PARTIAL RUN")
    assert f"make test: NOT RUN: the end-to-end suite skipped 2 of 2 tests ({NO_MARIADB})" in lines[-3:]
    assert _row("e2e", "e2e", 0, 0, 2) in lines
    assert "total: 5 passed, 0 failed, 2 skipped" in lines


@pytest.mark.parametrize("outcome", ["skipped", None])
def test_under_ci_a_skipped_or_missing_e2e_fails(tmp_path, outcome):
    if outcome:
        lines, rc = _run(tmp_path, outcome, ci=True)
    else:  # tox never got to the e2e env: no report at all
        lines, rc = _run(tmp_path, ci=True, skip=("e2e",))
        assert "make test: NOT RUN: the end-to-end suite (tests/e2e) did not run: no report from it" in lines
    assert rc == 1
    assert lines[-1] == "make test: FAILED: under CI the end-to-end suite must run (install mariadb-server)"


def test_under_ci_a_full_run_passes(tmp_path):
    assert _run(tmp_path, ci=True)[1] == 0


def test_a_tox_failure_is_never_hidden(tmp_path):
    lines, rc = _run(tmp_path, "failed", tox_rc=1)
    assert rc == 1
    assert lines[-1].startswith("make test: FAILED (tox exited 1")
    assert _row("e2e", "e2e", 0, 2, 0) in lines


def test_an_environment_without_its_report_is_named(tmp_path):
    lines, rc = _run(tmp_path, skip=("charmcraft",))
    assert rc == 0
    assert "make test: NOT RUN: tox env charmcraft wrote no report of its packing tests" in " ".join(lines)
    assert lines[-1].startswith("make test: PARTIAL RUN")


def test_a_pytest_that_collected_nothing_is_named(tmp_path):
    # pytest's exit 5 fails tox; the summary says which suite it was.
    _full_run(tmp_path, skip=("charmcraft",))
    _report(tmp_path, "charmcraft", "packing", [])
    lines, rc = make_test.summarize(make_test.read_reports(tmp_path), 1, py38=True, ci=True)
    assert rc == 1
    assert _row("charmcraft", "packing", 0, 0, 0) in lines
    assert "make test: NOT RUN: tox env charmcraft ran no packing test (pytest collected nothing)" in lines


def test_no_python_38_is_a_partial_run(tmp_path):
    lines, rc = _run(tmp_path, py38=False, skip=("py38",))
    assert rc == 0
    assert any("py38 did not run" in line for line in lines)
    assert not any("py38 wrote no report" in line for line in lines)
    assert lines[-1].startswith("make test: PARTIAL RUN")


def test_prepare_removes_reports_of_an_earlier_run(tmp_path, monkeypatch):
    _full_run(tmp_path)
    monkeypatch.setattr(make_test, "mariadb_available", lambda: None)
    make_test.prepare(tmp_path)
    assert make_test.read_reports(tmp_path) == {}


def test_prepare_without_root_says_e2e_will_be_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(make_test, "mariadb_available", lambda: NO_MARIADB)
    monkeypatch.setattr(make_test.os, "geteuid", lambda: 1000)
    make_test.prepare(tmp_path)
    assert "the end-to-end suite will be SKIPPED" in capsys.readouterr().out
