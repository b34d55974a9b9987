"""Issue 21 part 8: a profile sync that fails does not take a serving unit off Active.

GIVEN the tutorial's settled deployment with a Kubeflow profile, WHEN the
Kubernetes API fails the profile sync for a reason other than a missing
grant (a server error, a timeout), THEN the unit stays Active while MLflow
serves, its message says that the profile sync fails and why, the next hook
tries again, and the `sync-profiles` action reports the same error.
"""

import dataclasses

import pytest
from ops.model import ActiveStatus
from scenario import ActionFailed

import world

NAME = "mlflow-server-minio"


@pytest.fixture
def profiles(kubernetes):
    kubernetes.add_namespace("kubeflow", {"app.kubernetes.io/part-of": "kubeflow"})
    kubernetes.add_profile("admin")
    return kubernetes


def synced(api, namespace):
    return api.get("secrets", namespace, NAME) is not None and api.get("poddefaults", namespace, NAME) is not None


def test_a_failing_profile_list_keeps_the_unit_active_and_says_why(ctx, tmp_path, profiles, pod_specs):
    out = world.settled(ctx, tmp_path)
    profiles.add_profile("carol")
    profiles.failing[("list", "namespaces")] = 500

    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus(
        "profile sync failing: the Kubernetes API answered HTTP 500 listing Kubeflow profiles; "
        "retrying at the next hook"
    )
    assert len(pod_specs) == 1, "MLflow is left as it serves"
    with pytest.raises(ActionFailed) as failed:
        ctx.run(ctx.on.action("sync-profiles"), out)
    assert failed.value.message == out.unit_status.message

    del profiles.failing[("list", "namespaces")]
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus(), "the next hook tried again"
    assert synced(profiles, "carol")


def test_a_timed_out_sync_keeps_the_unit_active_and_retries_at_the_next_hook(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    profiles.stall_seconds = 5  # longer than the charm's per-call timeout
    profiles.stall("poddefaults")
    profiles.add_profile("bob")

    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status.name == "active"
    message = out.unit_status.message
    assert message.startswith("profile sync failing: cannot reach the Kubernetes API (") and "Timeout" in message
    assert message.endswith("; retrying at the next hook")
    assert not synced(profiles, "bob")

    profiles.stalled.clear()
    out = ctx.run(ctx.on.config_changed(), out)  # any hook retries, not only update-status
    assert out.unit_status == ActiveStatus()
    assert synced(profiles, "bob")


def test_a_failing_write_keeps_the_unit_active_and_the_action_reports_it(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    profiles.add_profile("carol")
    profiles.failing[("create", "poddefaults")] = 503

    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus(
        "profile sync failing: the Kubernetes API answered create carol/PodDefault (HTTP 503); "
        "retrying at the next hook"
    )
    with pytest.raises(ActionFailed, match=r"create carol/PodDefault \(HTTP 503\)"):
        ctx.run(ctx.on.action("sync-profiles"), out)
    assert ctx.action_results["refused"] == "create carol/PodDefault (HTTP 503)", "what was done is reported too"

    profiles.failing.clear()
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus() and synced(profiles, "carol")


def test_a_refusal_a_retry_cannot_mend_still_blocks(ctx, tmp_path, profiles):
    """403 on a write: the grant is missing a rule; only a person can fix that."""
    out = world.settled(ctx, tmp_path)
    profiles.add_profile("carol")
    profiles.forbid("create", "poddefaults")
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status.name == "blocked"
    assert "create carol/PodDefault (HTTP 403)" in out.unit_status.message


def test_while_mlflow_is_not_ready_the_pod_is_reported_first(ctx, tmp_path, profiles, mlflow):
    out = world.settled(ctx, tmp_path)
    profiles.add_profile("carol")
    profiles.failing[("list", "namespaces")] = 500
    profiles.pod_ready, mlflow.status = False, 503
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status.name == "waiting" and "profile sync" not in out.unit_status.message


def test_the_action_names_a_bad_config_or_unusable_minio_data_and_writes_nothing(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    profiles.add_profile("carol")
    bad_config = dataclasses.replace(out, config={"mlflow_port": 80})
    with pytest.raises(ActionFailed) as failed:
        ctx.run(ctx.on.action("sync-profiles"), bad_config)
    assert failed.value.message.startswith("cannot sync Kubeflow profiles: ") and "mlflow_port" in failed.value.message

    no_keys = {"_supported_versions": "- v1\n", "data": "access-key: minio\nport: nine\n"}
    bad_minio = world.update_relation(out, "object-storage", remote_app_data=no_keys)
    with pytest.raises(ActionFailed) as failed:
        ctx.run(ctx.on.action("sync-profiles"), bad_minio)
    assert failed.value.message.startswith("cannot sync Kubeflow profiles: ") and "minio" in failed.value.message
    assert not synced(profiles, "carol")


@pytest.mark.parametrize("failure", ["not granted", "server error"])
def test_removing_the_application_while_the_api_fails_completes(ctx, tmp_path, profiles, failure, caplog):
    """The remove hook never fails on the profiles: Juju would retry it, and the objects are listed in the README."""
    out = world.settled(ctx, tmp_path)
    if failure == "not granted":
        profiles.forbid("list", "namespaces")
    else:
        profiles.failing[("list", "namespaces")] = 500
    ctx.run(ctx.on.remove(), out)
    assert synced(profiles, "admin"), "left in place: nothing could delete them"
    warned = [
        r.getMessage() for r in caplog.records if "could not remove the Kubeflow profile objects" in r.getMessage()
    ]
    # Without the grant there was never anything to remove; a failing API is worth a line in the log.
    assert len(warned) == (0 if failure == "not granted" else 1)
    assert all("HTTP 500" in line for line in warned)
