"""How many pods of the current spec are Ready, and what the unit says about it."""

from types import SimpleNamespace

import pytest

from pod_readiness import NO_POD_OF_SPEC, NOT_READY, Readiness, count_ready, planned_pods
from problems import Waiting

ANNOTATION = "mlflow-server.charm/spec-revision"


def pod(revision: str = "mlflow-server/0#2", ready: bool = True, terminating: bool = False):
    conditions = [SimpleNamespace(type="Ready", status="True" if ready else "False")]
    return SimpleNamespace(
        metadata=SimpleNamespace(
            annotations={ANNOTATION: revision}, deletionTimestamp="2026-11-28T06:00:00Z" if terminating else None
        ),
        status=SimpleNamespace(conditions=conditions),
    )


def test_only_pods_of_the_current_spec_that_are_not_terminating_count():
    pods = [pod(), pod(ready=False), pod(revision="mlflow-server/0#1"), pod(terminating=True)]
    assert count_ready(pods, ANNOTATION, "mlflow-server/0#2", expected=3) == Readiness(3, 2, 1)


@pytest.mark.parametrize("ready, expected", [(2, 3), (0, 2), (1, 2)])
def test_fewer_ready_pods_than_units_waits_saying_how_many(ready, expected):
    with pytest.raises(Waiting) as raised:
        Readiness(expected, expected, ready).check()
    assert raised.value.message.startswith(f"{ready}/{expected} MLflow pods ready")


@pytest.mark.parametrize("expected, ready", [(1, 1), (3, 3), (2, 3), (0, 1)])
def test_every_planned_pod_ready_is_no_problem(expected, ready):
    Readiness(expected, ready, ready).check()


def test_one_unit_keeps_the_single_pod_messages():
    for readiness, message in ((Readiness(1, 0, 0), NO_POD_OF_SPEC), (Readiness(1, 1, 0), NOT_READY)):
        with pytest.raises(Waiting) as raised:
            readiness.check()
        assert raised.value.message == message


def test_a_pod_without_status_or_metadata_yet_is_not_ready():
    scheduled = SimpleNamespace(metadata=pod().metadata, status=None)
    nameless = SimpleNamespace(metadata=None, status=pod().status)
    readiness = count_ready([scheduled, nameless], ANNOTATION, "mlflow-server/0#2", expected=1)
    assert (readiness.current, readiness.ready) == (1, 0)
    with pytest.raises(Waiting, match=NOT_READY):
        readiness.check()


def test_an_unreadable_planned_unit_count_is_judged_by_one_pod(caplog):
    def goal_state_unavailable():
        raise RuntimeError("goal-state failed")

    assert planned_pods(goal_state_unavailable) == 1
    assert "cannot read the planned unit count (RuntimeError)" in caplog.text
    assert planned_pods(lambda: 3) == 3
