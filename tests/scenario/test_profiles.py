"""MLflow in every Kubeflow profile namespace, against the loopback Kubernetes API.

GIVEN namespaces with and without the profile label (and the API's answers:
403s, stalls, nothing listening), WHEN Juju runs the charm's hooks, THEN the
profiles, and only they, hold our Secret and PodDefault, which follow every
change and go away when they are no longer wanted.
"""

import base64
import dataclasses
import json
import time

import pytest
from ops.model import ActiveStatus, BlockedStatus, WaitingStatus
from scenario import ActionFailed

import charm
import world
from contracts import MINIO_APP_DATA, MINIO_SECRET_KEY
from fakes.kubernetes_api import rbac_rules
from fakes.network_guard import free_port

NAME = "mlflow-server-minio"
OURS = {
    "app.kubernetes.io/managed-by": "mlflow-server",
    "mlflow-server.charm/app": "mlflow-server",
    "mlflow-server.charm/model": "kubeflow",
}
ROTATED_KEY = "rotated-Secret-42"


@pytest.fixture
def profiles(kubernetes):
    """The tutorial's cluster: the kubeflow model, a profile (admin), a plain namespace."""
    kubernetes.add_namespace("kubeflow", {"app.kubernetes.io/part-of": "kubeflow"})
    kubernetes.add_namespace("default")
    kubernetes.add_profile("admin")
    return kubernetes


def _objects(api, namespace):
    return api.get("secrets", namespace, NAME), api.get("poddefaults", namespace, NAME)


def _env(pod_default):
    return {e["name"]: e for e in pod_default["spec"]["env"]}


def _secret_keys(secret):
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def _rotated_minio():
    data = MINIO_APP_DATA["data"].replace(f"secret-key: {MINIO_SECRET_KEY}", f"secret-key: {ROTATED_KEY}")
    return dict(MINIO_APP_DATA, data=data)


def test_a_profile_gets_the_secret_and_the_pod_default_and_nothing_else_is_written(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    assert out.unit_status == ActiveStatus()

    secret, pod_default = _objects(profiles, "admin")
    assert _secret_keys(secret) == {"AWS_ACCESS_KEY_ID": "minio", "AWS_SECRET_ACCESS_KEY": MINIO_SECRET_KEY}
    env = _env(pod_default)
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow-server.kubeflow.svc.cluster.local:5000"
    assert env["MLFLOW_S3_ENDPOINT_URL"]["value"] == "http://minio.kubeflow:9000"
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"] == {"secretKeyRef": {"name": NAME, "key": "AWS_SECRET_ACCESS_KEY"}}
    assert pod_default["spec"]["selector"] == {"matchLabels": {NAME: "true"}}
    for obj in (secret, pod_default):
        assert OURS.items() <= obj["metadata"]["labels"].items()
    assert MINIO_SECRET_KEY not in json.dumps(pod_default)

    written = {(ns, resource) for _, resource, ns, _ in profiles.writes}
    assert written == {("admin", "secrets"), ("admin", "poddefaults")}
    # The admission-webhook relation still carries the kubeflow-namespace PodDefault as today.
    assert "AWS_SECRET_ACCESS_KEY" in world.bag(out, "pod-defaults")["pod-defaults"]


def test_the_first_sync_creates_each_object_once_in_the_order_a_notebook_needs(ctx, tmp_path, profiles):
    world.settled(ctx, tmp_path)
    creates = [(verb, resource) for verb, resource, ns, _ in profiles.writes]
    assert creates == [("create", "secrets"), ("create", "poddefaults")]


def test_rotated_keys_reach_every_profile_in_the_hook_that_brings_them(ctx, tmp_path, profiles):
    profiles.add_profile("alice")
    out = world.settled(ctx, tmp_path)
    pod_defaults_before = {ns: _objects(profiles, ns)[1] for ns in ("admin", "alice")}
    out = world.update_relation(out, "object-storage", remote_app_data=_rotated_minio())
    out = ctx.run(ctx.on.relation_changed(out.get_relation(world.RELATION_IDS["object-storage"])), out)
    for ns in ("admin", "alice"):
        secret, pod_default = _objects(profiles, ns)
        assert _secret_keys(secret)["AWS_SECRET_ACCESS_KEY"] == ROTATED_KEY
        assert pod_default == pod_defaults_before[ns]  # by reference: it needs no change


def test_a_changed_port_reaches_the_pod_defaults(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"mlflow_port": 5001}))
    _, pod_default = _objects(profiles, "admin")
    assert _env(pod_default)["MLFLOW_TRACKING_URI"]["value"].endswith(":5001")


def test_serve_artifacts_removes_the_secret_and_turning_it_off_brings_it_back(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"serve_artifacts": True}))
    secret, pod_default = _objects(profiles, "admin")
    env = _env(pod_default)
    assert secret is None and "MLFLOW_TRACKING_URI" in env
    assert not {"MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(env)
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(out, config={"serve_artifacts": False}))
    secret, pod_default = _objects(profiles, "admin")
    assert _secret_keys(secret)["AWS_SECRET_ACCESS_KEY"] == MINIO_SECRET_KEY
    assert "AWS_SECRET_ACCESS_KEY" in _env(pod_default)


def test_removing_object_storage_deletes_what_the_charm_made(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    world.unrelate(ctx, out, "object-storage")
    assert _objects(profiles, "admin") == (None, None)
    assert ("delete", "poddefaults", "admin", NAME) in profiles.writes


def test_turning_the_option_off_deletes_them_and_stops_asking_kubernetes(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    out = world.active(ctx, ctx.on.config_changed(), dataclasses.replace(out, config={"sync_profiles": False}))
    assert out.unit_status == ActiveStatus()
    assert _objects(profiles, "admin") == (None, None)
    asked = len(profiles.api_requests)
    ctx.run(ctx.on.update_status(), out)
    assert len(profiles.api_requests) == asked


def test_the_remove_hook_takes_them_back(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    ctx.run(ctx.on.remove(), out)
    assert _objects(profiles, "admin") == (None, None)


def test_a_non_leader_unit_removed_in_a_scale_down_leaves_them(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    ctx.run(ctx.on.remove(), dataclasses.replace(out, leader=False))
    assert None not in _objects(profiles, "admin")


def test_a_new_profile_is_served_by_the_next_update_status(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    asked = len(profiles.api_requests)
    out = ctx.run(ctx.on.update_status(), out)
    assert len(profiles.api_requests) == asked + 1 and out.unit_status == ActiveStatus()  # one list, no writes

    profiles.add_profile("bob")
    out = ctx.run(ctx.on.update_status(), out)
    assert None not in _objects(profiles, "bob")
    assert out.unit_status == ActiveStatus()


def test_a_users_own_object_of_that_name_is_left_alone_and_reported(ctx, tmp_path, profiles):
    theirs = {
        "apiVersion": "kubeflow.org/v1alpha1",
        "kind": "PodDefault",
        "metadata": {"name": NAME, "namespace": "admin", "labels": {"copied-by": "kubectl"}},
        "spec": {"selector": {"matchLabels": {NAME: "true"}}, "env": [{"name": "MLFLOW_TRACKING_URI", "value": "x"}]},
    }
    profiles.put("poddefaults", "admin", theirs)
    out = world.settled(ctx, tmp_path)
    assert isinstance(out.unit_status, BlockedStatus)
    assert "admin/PodDefault" in out.unit_status.message and "not created by this charm" in out.unit_status.message
    assert profiles.get("poddefaults", "admin", NAME) == theirs
    assert ("poddefaults", "admin") not in {(r, ns) for _, r, ns, _ in profiles.writes}

    # Once the user deletes their copy, the next update-status puts ours there.
    del profiles.objects[("poddefaults", "admin", NAME)]
    out = ctx.run(ctx.on.update_status(), out)
    assert (
        out.unit_status == ActiveStatus()
        and OURS.items() <= _objects(profiles, "admin")[1]["metadata"]["labels"].items()
    )


def test_without_the_grant_nothing_changes_and_the_action_says_what_is_needed(ctx, tmp_path, profiles):
    profiles.forbid("list", "namespaces")
    out = world.settled(ctx, tmp_path)
    assert out.unit_status == ActiveStatus()
    assert profiles.writes == []
    assert "AWS_SECRET_ACCESS_KEY" in world.bag(out, "pod-defaults")["pod-defaults"]
    with pytest.raises(ActionFailed) as failed:
        ctx.run(ctx.on.action("sync-profiles"), out)
    assert "juju trust mlflow-server" in failed.value.message and "ClusterRole" in failed.value.message


def test_without_the_grant_a_settled_update_status_asks_kubernetes_at_most_hourly(ctx, tmp_path, profiles, monkeypatch):
    profiles.forbid("list", "namespaces")
    out = world.settled(ctx, tmp_path)
    asked = len(profiles.api_requests)
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus() and len(profiles.api_requests) == asked

    # An hour on, the admin has applied the ClusterRole: the next update-status finds out.
    later = time.time() + charm.GRANT_RECHECK_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    profiles.forbidden.clear()
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus()
    assert _objects(profiles, "admin")[1] is not None, "the profile got its PodDefault once the grant was seen"


def test_a_refused_write_blocks_naming_it(ctx, tmp_path, profiles):
    profiles.forbid("create", "poddefaults")
    out = world.settled(ctx, tmp_path)
    assert isinstance(out.unit_status, BlockedStatus)
    assert "create admin/PodDefault (HTTP 403)" in out.unit_status.message and "ClusterRole" in out.unit_status.message


def test_no_poddefault_kind_blocks_naming_admission_webhook(ctx, tmp_path, profiles):
    profiles.unserved.add("poddefaults")
    out = world.settled(ctx, tmp_path)
    assert isinstance(out.unit_status, BlockedStatus)
    assert "create admin/PodDefault (HTTP 404)" in out.unit_status.message
    assert "admission-webhook" in out.unit_status.message and "ClusterRole" not in out.unit_status.message


def test_a_stalled_api_is_reported_after_one_bounded_call(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    profiles.stall_seconds = 5  # longer than the charm's per-call timeout
    profiles.stall("poddefaults")
    for name in ("bob", "carol", "dave"):
        profiles.add_profile(name)
    asked = len(profiles.api_requests)
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status.name == "active", "MLflow serves: a failing profile sync says so, Active"
    assert "cannot reach the Kubernetes API" in out.unit_status.message and "Timeout" in out.unit_status.message
    stalled = [p for _, p, _ in profiles.api_requests[asked:] if "/poddefaults/" in p]
    assert len(stalled) == 1, "the sync stops at the first call that times out"


def test_an_unreachable_api_is_waiting_naming_it(ctx, tmp_path, profiles, monkeypatch):
    out = world.settled(ctx, tmp_path)
    nobody = {"server": f"http://127.0.0.1:{free_port()}"}
    config = json.loads(profiles.write_kubeconfig(tmp_path / "closed").read_text())
    config["clusters"][0]["cluster"] = nobody
    (tmp_path / "closed").write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "closed"))
    out = ctx.run(ctx.on.update_status(), out)
    # The readiness check, on the same API, names it first; the hook raised nothing.
    assert isinstance(out.unit_status, WaitingStatus) and "Kubernetes API" in out.unit_status.message
    assert None not in _objects(profiles, "admin")


def test_the_action_syncs_at_once_and_reports_without_values(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    profiles.add_profile("carol")
    ctx.run(ctx.on.action("sync-profiles"), out)
    assert ctx.action_results["created"] == "carol/Secret, carol/PodDefault"
    assert ctx.action_results["unchanged"] == "admin/Secret, admin/PodDefault"
    assert ctx.action_results["namespaces"] == "admin, carol"


def test_the_action_fails_on_a_non_leader_and_with_the_option_off(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    with pytest.raises(ActionFailed) as failed:
        ctx.run(ctx.on.action("sync-profiles"), dataclasses.replace(out, leader=False))
    assert "leader" in failed.value.message
    with pytest.raises(ActionFailed) as failed:
        ctx.run(ctx.on.action("sync-profiles"), dataclasses.replace(out, config={"sync_profiles": False}))
    assert "sync_profiles" in failed.value.message


def test_unusable_minio_data_keeps_what_profiles_hold(ctx, tmp_path, profiles):
    out = world.settled(ctx, tmp_path)
    before = _objects(profiles, "admin")
    bad = {"_supported_versions": "- v1\n", "data": "access-key: minio\nsecret-key: 12345\nservice: minio\n"}
    out = world.update_relation(out, "object-storage", remote_app_data=bad)
    out = ctx.run(ctx.on.relation_changed(out.get_relation(world.RELATION_IDS["object-storage"])), out)
    assert isinstance(out.unit_status, BlockedStatus)
    assert _objects(profiles, "admin") == before


def test_the_readme_cluster_role_is_all_the_sync_needs(ctx, tmp_path, profiles):
    """The API enforces exactly the rules of kubeflow-profiles-rbac.yaml, resourceNames included."""
    profiles.rules = rbac_rules()
    out = world.settled(ctx, tmp_path)
    assert out.unit_status == ActiveStatus() and None not in _objects(profiles, "admin")
    out = world.update_relation(out, "object-storage", remote_app_data=_rotated_minio())
    out = ctx.run(ctx.on.relation_changed(out.get_relation(world.RELATION_IDS["object-storage"])), out)
    assert _secret_keys(_objects(profiles, "admin")[0])["AWS_SECRET_ACCESS_KEY"] == ROTATED_KEY
    out = world.active(ctx, ctx.on.config_changed(), dataclasses.replace(out, config={"serve_artifacts": True}))
    assert out.unit_status == ActiveStatus() and _objects(profiles, "admin")[0] is None
    ctx.run(ctx.on.remove(), out)
    assert _objects(profiles, "admin") == (None, None)
