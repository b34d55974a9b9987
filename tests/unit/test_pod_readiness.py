"""How many pods of the current spec are Ready, and what the unit says about it."""

from types import SimpleNamespace

import pytest

from pod_readiness import Readiness, count_ready
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
    problem = Readiness(expected, expected, ready).problem()
    assert isinstance(problem, Waiting)
    assert problem.message.startswith(f"{ready}/{expected} MLflow pods ready")


@pytest.mark.parametrize("expected, ready", [(1, 1), (3, 3), (2, 3), (0, 1)])
def test_every_planned_pod_ready_is_no_problem(expected, ready):
    assert Readiness(expected, ready, ready).problem() is None


def test_one_unit_keeps_the_single_pod_messages():
    starting = "waiting for Kubernetes to start the MLflow pod of the current pod spec"
    assert Readiness(1, 0, 0).problem().message == starting
    assert Readiness(1, 1, 0).problem().message == "waiting for the MLflow pod to pass its /health readiness probe"
