#!/usr/bin/env python3
"""What `make test` does around tox, so a partial run never passes for a full one.

    python3 scripts/make_test.py prepare            # before tox: MariaDB if we may install it
    python3 scripts/make_test.py summary RC [--no-py38]   # after tox: what ran, what did not

`prepare` installs Debian's mariadb-server when `mariadbd` is missing and this
is root with apt-get (as `make demo` does), and says so when it cannot.
`summary` reads the JUnit reports pytest wrote under .tox/<env>/junit/ (each
pytest command in tox.ini writes its own file) and prints, as the run's last
lines, every test that ran counted by environment and suite (tests/<suite>/),
every skipped test with its reason, and every suite that did not run. Its
exit status is tox's, or 1 under CI (`CI` set) when the end-to-end suite was
skipped: CI must never go green on a partial run.

Runs on the machine's python3 with the standard library only: no venv exists
yet when `prepare` runs.
"""

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "e2e"), str(ROOT / "tests")]  # servers imports fakes/

from servers import mariadb_available  # noqa: E402 - stdlib-only module, shared with the e2e suite

REPORTS = "*/junit/*.xml"  # under .tox/: {env_dir}/junit/<name>.xml, as tox.ini's commands write them
E2E = "e2e"
# (env, suite) pairs `make test` runs: a missing one is named, never silently absent.
EXPECTED = (("tests", "unit"), ("tests", "scenario"), ("e2e", E2E), ("py38", "unit"), ("charmcraft", "packing"))
OUTCOMES = ("passed", "failed", "skipped")
INSTALL = (
    ["apt-get", "update", "-qq"],
    ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "mariadb-server"],
)


def say(text: str = "") -> None:
    print(text, flush=True)


def prepare(tox_dir: Path) -> None:
    for stale in tox_dir.glob(REPORTS):
        stale.unlink()
    missing = mariadb_available()
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        say(f"make test: {missing}.")
        say("make test: not root with apt-get, so not installing it: the end-to-end suite will be SKIPPED")
        say("make test: run `sudo apt-get install mariadb-server` first for a full run")
        return
    say("make test: MariaDB is missing: installing Debian's mariadb-server (a minute or two)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in INSTALL:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            say(f"make test: `{' '.join(command)}` failed ({done.returncode}): the end-to-end suite will be SKIPPED")
            say("  " + "\n  ".join((done.stderr or done.stdout).strip().splitlines()[-5:]))
            return
    say(f"make test: {mariadb_available() or 'mariadb-server installed'}")


def suite_of(classname: str, report: Path) -> str:
    """tests.scenario.test_x -> "scenario"; a test outside tests/<suite>/ counts under its report's name."""
    parts = classname.split(".")
    return parts[1] if len(parts) > 2 and parts[0] == "tests" else report.stem


def read_reports(tox_dir: Path) -> Dict[Tuple[str, str], List[dict]]:
    """(env, suite) -> its test cases: {"id", "outcome" (passed/failed/skipped), "reason"}.

    A report with no test case still counts: its suite ran no test (pytest's exit 5)."""
    reports: Dict[Tuple[str, str], List[dict]] = {}
    for path in sorted(tox_dir.glob(REPORTS)):
        env = path.parent.parent.name
        root = ET.parse(path).getroot()  # noqa: S314 - our own pytest wrote it
        cases = list(root.iter("testcase"))
        if not cases:
            reports.setdefault((env, path.stem), [])
        for case in cases:
            outcome, reason = "passed", ""
            for child in case:
                if child.tag == "skipped":
                    outcome, reason = "skipped", child.get("message", "")
                elif child.tag in ("failure", "error"):
                    outcome = "failed"
            classname = case.get("classname", "")
            reports.setdefault((env, suite_of(classname, path)), []).append(
                {"id": f"{classname}.{case.get('name', '')}", "outcome": outcome, "reason": reason}
            )
    return reports


def summarize(reports: Dict[Tuple[str, str], List[dict]], tox_rc: int, py38: bool, ci: bool) -> Tuple[List[str], int]:
    """The summary's lines and the exit status of `make test`."""
    lines = [
        "",
        "make test: summary, every test that ran (tox's own verdict per environment is above)",
        f"  {'env':<12}{'suite':<10}" + "".join(f"{what:>9}" for what in OUTCOMES),
    ]
    partial: List[str] = []
    total: Counter = Counter()

    def in_run_order(key: Tuple[str, str]) -> Tuple[int, Tuple[str, str]]:
        return (EXPECTED.index(key) if key in EXPECTED else len(EXPECTED), key)

    for (env, suite), cases in sorted(reports.items(), key=lambda item: in_run_order(item[0])):
        counts = Counter(case["outcome"] for case in cases)
        total.update(counts)
        lines.append(f"  {env:<12}{suite:<10}" + "".join(f"{counts[what]:>9}" for what in OUTCOMES))
        reasons = Counter(case["reason"] for case in cases if case["outcome"] == "skipped")
        for reason, n in reasons.most_common():
            lines.append(f"  {'':<22}SKIPPED {n}: {reason}")
        if not cases:
            partial.append(f"tox env {env} ran no {suite} test (pytest collected nothing)")
    lines.append("total: " + ", ".join(f"{total[what]} {what}" for what in OUTCOMES))

    e2e = [case for (_, suite), cases in reports.items() if suite == E2E for case in cases]
    e2e_skipped = [case for case in e2e if case["outcome"] == "skipped"]
    for env, suite in EXPECTED:
        if suite == E2E or (env == "py38" and not py38) or (env, suite) in reports:
            continue
        partial.append(f"tox env {env} wrote no report of its {suite} tests (it failed or stopped before them)")
    if not e2e:
        partial.append("the end-to-end suite (tests/e2e) did not run: no report from it")
    elif e2e_skipped:
        partial.append(
            f"the end-to-end suite skipped {len(e2e_skipped)} of {len(e2e)} tests ({e2e_skipped[0]['reason']})"
        )
    if not py38:
        partial.append("tox env py38 did not run: no Python 3.8 here (py38-compat checked the 3.8 claim statically)")
    other_skips = total["skipped"] - len(e2e_skipped)
    if other_skips:
        partial.append(f"{other_skips} other tests skipped (reasons above)")

    rc = tox_rc
    lines.append("")
    for what in partial:
        lines.append(f"make test: NOT RUN: {what}")
    if rc != 0:
        lines.append(f"make test: FAILED (tox exited {rc}; see the failures above)")
    elif ci and (not e2e or e2e_skipped):
        rc = 1
        lines.append("make test: FAILED: under CI the end-to-end suite must run (install mariadb-server)")
    elif partial:
        lines.append("make test: PARTIAL RUN: everything that ran passed, but not everything ran (see NOT RUN)")
    else:
        lines.append("make test: FULL RUN: every suite ran and passed")
    return lines, rc


def main(argv: Optional[List[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    tox_dir = ROOT / ".tox"
    if args[:1] == ["prepare"]:
        prepare(tox_dir)
        return 0
    if args[:1] == ["summary"] and len(args) >= 2:
        lines, rc = summarize(
            read_reports(tox_dir),
            int(args[1]),
            py38="--no-py38" not in args,
            ci=os.environ.get("CI", "").lower() not in ("", "0", "false", "no"),
        )
        say("\n".join(lines))
        return rc
    say(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
