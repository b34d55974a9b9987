"""What a profile sync's report asks of the unit: a person (Blocked), or only the next hook (Degraded)."""

import pytest

from kubeflow_profiles import SyncReport
from problems import Blocked, Degraded

NAME = "mlflow-server-minio"


@pytest.mark.parametrize(
    "refused, hint",
    [
        (["create admin/PodDefault (HTTP 403)"], "ClusterRole"),
        (["patch admin/Secret (HTTP 401)"], "ClusterRole"),
        (["create admin/PodDefault (HTTP 404)"], "admission-webhook"),
        (["create admin/PodDefault (HTTP 422)"], "admission-webhook"),
        # one refusal no retry mends outweighs any number that may pass
        (["create a/Secret (HTTP 500)", "create b/Secret (HTTP 403)"], "ClusterRole"),
    ],
)
def test_a_refusal_only_a_person_can_mend_blocks(refused, hint):
    with pytest.raises(Blocked, match=hint):
        SyncReport(refused=refused).check(NAME)


@pytest.mark.parametrize("code", [409, 429, 500, 503])
def test_a_refusal_that_may_pass_keeps_the_unit_active(code):
    with pytest.raises(Degraded) as raised:
        SyncReport(refused=[f"patch admin/Secret (HTTP {code})"]).check(NAME)
    assert raised.value.kind == "active"
    assert raised.value.message == (
        f"profile sync failing: the Kubernetes API answered patch admin/Secret (HTTP {code}); retrying at the next hook"
    )


def test_running_out_of_time_keeps_the_unit_active_naming_a_few_namespaces():
    with pytest.raises(Degraded) as raised:
        SyncReport(unfinished=["a", "b", "c", "d", "e"]).check(NAME)
    assert raised.value.message == (
        "profile sync incomplete: ran out of time before a, b, c and 2 more; retrying at the next hook"
    )


def test_objects_of_someone_else_block_before_anything_else():
    report = SyncReport(foreign=["admin/Secret"], refused=["patch b/Secret (HTTP 500)"], unfinished=["c"])
    with pytest.raises(Blocked, match="not created by this charm"):
        report.check(NAME)


def test_a_clean_report_raises_nothing():
    SyncReport(namespaces=["admin"], unchanged=["admin/Secret", "admin/PodDefault"]).check(NAME)
