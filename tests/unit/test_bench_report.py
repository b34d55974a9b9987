"""bench/hooks.py's verdicts: one PASS/FAIL line per target and hook, and a
last line that counts exactly the lines printed above it."""

import re
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import hooks  # noqa: E402

FLOOR = 0.2


def _measured(slow: str = "", s3_on: str = "", status_of: str = ""):
    """The scenarios as a run would leave them: every target met unless told otherwise."""
    all_sc = hooks.scenarios()
    for sc in all_sc:
        spec_set = 1 if sc.kind in ("fresh", "change") else 0
        for _ in range(3):
            sc.times.append(FLOOR * (2 if sc.name == slow else 1.1))
            sc.tools.append(Counter({"pod-spec-set": spec_set, "is-leader": 1}))
            sc.s3.append(1 if sc.name == s3_on else 0)
            # A settled update-status asks MLflow's /health once; with the profile sync
            # on it also asks Kubernetes once whether a profile came or went.
            sc.k8s.append(1 if sc.kind == "watch" else 0)
            sc.health.append(1 if sc.dispatch_path == "hooks/update-status" and sc.kind in ("noop", "watch") else 0)
            sc.imports.append(frozenset(sc.needs))
            sc.duplicates.append([])
            sc.statuses.append(
                ("active", "") if sc.name == status_of else hooks.ROLLOUT if spec_set else ("active", "")
            )
    return all_sc


def _verdicts(capsys, all_sc, enforce_timing: bool):
    ok = hooks.targets(all_sc, FLOOR, enforce_timing)
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if re.match(r"^  (PASS|FAIL)\b", line)]
    return ok, lines, out[-1]


def _summary_counts(summary: str):
    match = re.match(r"bench: (\d+) targets: (\d+) PASS, (\d+) FAIL", summary)
    assert match, summary
    return tuple(int(n) for n in match.groups())


@pytest.mark.parametrize("enforce_timing", [True, False])
def test_the_summary_counts_exactly_the_lines_printed(capsys, enforce_timing):
    ok, lines, summary = _verdicts(capsys, _measured(), enforce_timing)
    assert ok
    assert _summary_counts(summary) == (len(lines), len(lines), 0)
    if not enforce_timing:
        timing = [line for line in lines if "not enforced" in line]
        assert timing and f"({len(timing)} of them timing, not enforced in --short" in summary


def test_every_listed_target_has_its_own_line(capsys):
    _, lines, _ = _verdicts(capsys, _measured(), True)
    text = "\n".join(lines)
    for sc in hooks.scenarios():
        assert f"{sc.name}: imports only the heavy modules it needs" in text
        assert f"{sc.name}: each hook tool called once per key" in text
        if sc.timed_target:
            assert re.search(re.escape(sc.name) + r": median .* x floor", text)
        if sc.kind == "noop":
            assert f"{sc.name}: 0 pod-spec-set, 0 S3, 0 Kubernetes calls" in text
        if sc.kind in ("fresh", "change"):
            assert f"{sc.name}: sets exactly one pod spec and ends waiting" in text


def test_a_failed_target_is_a_fail_line_counted_and_fails_the_run(capsys):
    ok, lines, summary = _verdicts(capsys, _measured(s3_on="update-status (no-op, no profile sync)"), True)
    assert not ok
    assert [line for line in lines if line.startswith("  FAIL")] == [
        "  FAIL  update-status (no-op, no profile sync): 0 pod-spec-set, 1 S3, 0 Kubernetes calls"
    ]
    assert _summary_counts(summary) == (len(lines), len(lines) - 1, 1)


def test_a_spec_hook_that_does_not_end_waiting_fails(capsys):
    ok, lines, _ = _verdicts(capsys, _measured(status_of="install (fresh unit)"), True)
    assert not ok
    assert any(line.startswith("  FAIL  install (fresh unit): sets exactly one pod spec") for line in lines)


def test_a_slow_hook_in_short_mode_is_printed_and_counted_but_does_not_fail(capsys):
    ok, lines, summary = _verdicts(capsys, _measured(slow="update-status (no-op, no profile sync)"), False)
    assert ok
    assert any(line.startswith("  FAIL (timing, not enforced in --short)  update-status") for line in lines)
    assert _summary_counts(summary) == (len(lines), len(lines) - 1, 1)
    timed = sum(1 for sc in hooks.scenarios() if sc.timed_target)
    assert summary.endswith(f"({timed} of them timing, not enforced in --short: {timed - 1} PASS, 1 FAIL)")
