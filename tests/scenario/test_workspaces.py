"""enable_workspaces: one MLflow workspace per Kubeflow profile (issue 24), as Juju drives the charm.

GIVEN the tutorial's deployment with the mode on (an image of MLflow 3.17,
the admin's mlflow-workspaces-rbac.yaml applied or not), WHEN Juju runs the
charm's hooks, THEN the pod spec runs two servers with the plugin's flags
and variables, the service account and the CRD the plugin needs, notebooks
get no key anywhere, and the status says what is missing and what fixes it.
"""

import dataclasses
import json

import pytest
import yaml
from ops.model import ActiveStatus, BlockedStatus, WaitingStatus

import workspaces
import world
from contracts import IMAGE, MINIO_SECRET_KEY
from fakes.kubernetes_api import rbac_rules

IMAGE_317 = "docker.io/example/mlflow-workspaces:3.17.2-1"
ON = {"enable_workspaces": True}
NAME = "mlflow-server-minio"
TRACKING_URI = "http://mlflow-server.kubeflow.svc.cluster.local:5000"
APPLY = "kubectl apply -f mlflow-workspaces-rbac.yaml"


@pytest.fixture
def cluster(kubernetes):
    """The tutorial's cluster with one profile; the operator granted the profile sync."""
    kubernetes.add_namespace("kubeflow", {"app.kubernetes.io/part-of": "kubeflow"})
    kubernetes.add_profile("alice")
    kubernetes.rules = rbac_rules()
    return kubernetes


@pytest.fixture
def applied(cluster):
    """... and a cluster admin applied mlflow-workspaces-rbac.yaml."""
    cluster.apply_workspaces_rbac()
    return cluster


def _with_image(state, tmp_path, image=IMAGE_317):
    return world.with_image(state, tmp_path, image)


def _settle(ctx, tmp_path, config=ON, image=IMAGE_317):
    """Every peer related, then config-changed and the rollout, as in settled_in_one_hook."""
    state = _with_image(world.state(tmp_path, config=dict(config)), tmp_path, image)
    out = ctx.run(ctx.on.config_changed(), state)
    return world.rolled_out(ctx, out)


def _containers(spec):
    return {c["name"]: c for c in spec["containers"] if not c.get("init")}


def _plain_env(container):
    return {k: v for k, v in container["envConfig"].items() if isinstance(v, str)}


def _notebook_env(state):
    return json.loads(world.bag(state, "pod-defaults")["pod-defaults"])["minio"]["env"]


# --- the spec ------------------------------------------------------------------


def test_the_token_server_runs_the_plugin_and_proxies_every_artifact(ctx, tmp_path, applied, pod_specs):
    out = _settle(ctx, tmp_path)
    assert out.unit_status == ActiveStatus(workspaces.OVERRIDDEN)

    token = _containers(pod_specs[-1])["mlflow-server"]
    command = token["command"]
    for flag in ("--enable-workspaces", "--serve-artifacts"):
        assert flag in command
    assert command[command.index("--workspace-store-uri") + 1] == "kubernetes://"
    assert command[command.index("--app-name") + 1] == "kubernetes-auth"
    assert command[command.index("--artifacts-destination") + 1] == "s3://mlflow/"
    # Proxied only: a --default-artifact-root would send notebooks to S3 with keys they lack.
    assert "--default-artifact-root" not in command
    env = _plain_env(token)
    assert env["MLFLOW_K8S_AUTH_AUTHORIZATION_MODE"] == "self_subject_access_review"
    assert env["MLFLOW_K8S_WORKSPACE_LABEL_SELECTOR"] == "app.kubernetes.io/part-of=kubeflow-profile"
    assert env["MLFLOW_K8S_AUTH_CACHE_TTL_SECONDS"] == "300"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["UVICORN_TIMEOUT_WORKER_HEALTHCHECK"] == "600"
    # Never trusts identity headers, and no default workspace every profile would share.
    assert not {"MLFLOW_K8S_AUTH_REMOTE_USER_HEADER", "MLFLOW_K8S_DEFAULT_WORKSPACE", "MLFLOW_WORKSPACE"} & set(env)
    assert token["ports"] == [{"name": "http", "containerPort": 5000, "protocol": "TCP"}]


def test_a_second_server_serves_the_dashboard_in_trusted_header_mode(ctx, tmp_path, applied, pod_specs):
    _settle(ctx, tmp_path, config={**ON, "workspaces_ui_port": 5055, "workspaces_auth_cache_ttl": 30})
    containers = _containers(pod_specs[-1])
    assert sorted(containers) == ["mlflow-server", "mlflow-ui"]
    token, ui = containers["mlflow-server"], containers["mlflow-ui"]

    assert ui["imageDetails"] == token["imageDetails"]
    assert ui["ports"] == [{"name": "ui", "containerPort": 5055, "protocol": "TCP"}]
    expected = list(token["command"])
    expected[expected.index("--port") + 1] = "5055"
    assert ui["command"] == expected
    assert ui["kubernetes"]["readinessProbe"]["httpGet"] == {"path": "/health", "port": 5055}
    # Both servers are uvicorn workers limited to their pools (src/db_connections.py).
    assert ui["kubernetes"]["livenessProbe"]["tcpSocket"] == {"port": 5055}
    env = _plain_env(ui)
    assert env["MLFLOW_K8S_AUTH_AUTHORIZATION_MODE"] == "subject_access_review"
    assert env["MLFLOW_K8S_AUTH_REMOTE_USER_HEADER"] == "kubeflow-userid"
    assert env["MLFLOW_K8S_AUTH_REMOTE_GROUPS_HEADER"] == "kubeflow-groups"
    assert env["MLFLOW_K8S_AUTH_REMOTE_GROUPS_SEPARATOR"] == ","
    assert env["MLFLOW_K8S_AUTH_CACHE_TTL_SECONDS"] == "30"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    # Two servers a pod share one pod's part of db_connection_budget (default 100,
    # one unit, 4 workers): 100 // 2 pods at once // 2 servers = 25 a server,
    # (25 - 5) // (4 workers x 2 stores) = 2 connections an engine.
    for server in (token, ui):
        assert _plain_env(server)["MLFLOW_SQLALCHEMYSTORE_POOL_SIZE"] == "1"
        assert _plain_env(server)["MLFLOW_SQLALCHEMYSTORE_MAX_OVERFLOW"] == "1"
        assert _plain_env(server)["UVICORN_LIMIT_CONCURRENCY"] == "2"
    # Same database and bucket: the same Secrets, by reference only.
    secrets = {k for k, v in token["envConfig"].items() if not isinstance(v, str)}
    assert (
        secrets
        == {k for k, v in ui["envConfig"].items() if not isinstance(v, str)}
        == {
            "mlflow-server-db",
            "mlflow-server-minio",
        }
    )


def test_the_ingress_route_points_at_the_dashboards_server(ctx, tmp_path, applied):
    out = _settle(ctx, tmp_path, config={**ON, "workspaces_ui_port": 5055})
    request = yaml.safe_load(world.bag(out, "ingress")["data"])
    assert request["port"] == 5055 and request["service"] == "mlflow-server" and request["prefix"] == "/mlflow/"


def test_the_service_account_gets_the_plugins_global_role_and_nothing_more(ctx, tmp_path, applied, pod_specs):
    _settle(ctx, tmp_path)
    assert pod_specs[-1]["serviceAccount"] == {
        "roles": [
            {
                "global": True,
                "rules": [
                    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
                    {"apiGroups": ["mlflow.kubeflow.org"], "resources": ["mlflowconfigs"], "verbs": ["list", "watch"]},
                    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
                ],
            }
        ]
    }


def test_the_mlflowconfig_crd_comes_with_the_spec(ctx, tmp_path, applied, pod_specs):
    _settle(ctx, tmp_path)
    [crd] = pod_specs[-1]["kubernetesResources"]["customResourceDefinitions"]
    assert crd["name"] == "mlflowconfigs.mlflow.kubeflow.org"
    spec = crd["spec"]
    assert (spec["group"], spec["scope"], spec["names"]["plural"], spec["names"]["kind"]) == (
        "mlflow.kubeflow.org",
        "Namespaced",
        "mlflowconfigs",
        "MLflowConfig",
    )
    [version] = spec["versions"]
    assert version["name"] == "v1" and version["served"] and version["storage"]


def test_mode_off_the_spec_has_none_of_it(ctx, tmp_path, pod_specs):
    world.settled(ctx, tmp_path)
    spec = pod_specs[-1]
    assert list(_containers(spec)) == ["mlflow-server"]
    assert "serviceAccount" not in spec and "customResourceDefinitions" not in spec["kubernetesResources"]
    assert "--enable-workspaces" not in spec["containers"][1]["command"]


# --- notebooks -----------------------------------------------------------------


def test_notebooks_get_the_tracking_uri_and_their_own_token_and_no_key(ctx, tmp_path, applied):
    out = _settle(ctx, tmp_path)
    assert _notebook_env(out) == {
        "MLFLOW_TRACKING_URI": TRACKING_URI,
        "MLFLOW_TRACKING_AUTH": "kubernetes-namespaced",
        "MLFLOW_EXPERIMENT_NAME": "Default",
    }

    pod_default = applied.get("poddefaults", "alice", NAME)
    assert pod_default["spec"]["selector"] == {"matchLabels": {NAME: "true"}}
    assert pod_default["spec"]["desc"] == NAME
    assert pod_default["spec"]["env"] == [
        {"name": "MLFLOW_TRACKING_URI", "value": TRACKING_URI},
        {"name": "MLFLOW_TRACKING_AUTH", "value": "kubernetes-namespaced"},
        {"name": "MLFLOW_EXPERIMENT_NAME", "value": "Default"},
    ]
    assert applied.get("secrets", "alice", NAME) is None
    assert MINIO_SECRET_KEY not in json.dumps([pod_default, world.bag(out, "pod-defaults")])


def test_turning_the_mode_on_takes_back_the_keys_a_profile_held(ctx, tmp_path, applied):
    out = world.settled(ctx, tmp_path)
    assert applied.get("secrets", "alice", NAME) is not None

    out = world.rolled_out(ctx, ctx.run(ctx.on.config_changed(), _with_image(_config(out, ON), tmp_path)))
    assert out.unit_status == ActiveStatus(workspaces.OVERRIDDEN)
    assert applied.get("secrets", "alice", NAME) is None
    assert ("delete", "secrets", "alice", NAME) in applied.writes
    assert "AWS_SECRET_ACCESS_KEY" not in _notebook_env(out)

    # And off again: today's keys and Secret come back, and the status has nothing to explain.
    out = world.rolled_out(ctx, ctx.run(ctx.on.config_changed(), _config(out, {"enable_workspaces": False})))
    assert out.unit_status == ActiveStatus()
    assert applied.get("secrets", "alice", NAME) is not None
    assert "AWS_SECRET_ACCESS_KEY" in _notebook_env(out)


def _config(state, changes):
    return dataclasses.replace(state, config={**state.config, **changes})


# --- statuses ------------------------------------------------------------------


def test_serve_artifacts_true_leaves_nothing_to_explain(ctx, tmp_path, applied):
    out = _settle(ctx, tmp_path, config={**ON, "serve_artifacts": True})
    assert out.unit_status == ActiveStatus()


def test_an_image_too_old_for_the_plugin_blocks_and_names_the_fix(ctx, tmp_path, applied, pod_specs):
    out = _settle(ctx, tmp_path, image=IMAGE)
    assert isinstance(out.unit_status, BlockedStatus)
    assert "MLflow 2.22" in out.unit_status.message
    assert "juju attach-resource mlflow-server oci-image=" in out.unit_status.message
    assert pod_specs == [], "no spec the image cannot run"


def test_without_the_admins_file_it_blocks_and_names_the_command(ctx, tmp_path, cluster, pod_specs):
    out = _settle(ctx, tmp_path)
    assert out.unit_status == BlockedStatus(
        "enable_workspaces needs mlflow-workspaces-rbac.yaml, not applied: a cluster admin runs "
        "`kubectl apply -f mlflow-workspaces-rbac.yaml` (docs/multi-tenant.md)"
    )
    # The spec is set all the same: the servers run, and the file makes them usable.
    assert len(pod_specs) == 1

    cluster.apply_workspaces_rbac()
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus(workspaces.OVERRIDDEN)


def test_a_deleted_object_of_the_admins_file_is_named(ctx, tmp_path, applied):
    del applied.objects[("networkpolicies", "kubeflow", "mlflow-server-ui")]
    out = _settle(ctx, tmp_path)
    assert isinstance(out.unit_status, BlockedStatus)
    assert out.unit_status.message.startswith("objects of mlflow-workspaces-rbac.yaml missing (mlflow-server-ui)")
    assert APPLY in out.unit_status.message


def test_an_api_error_or_silence_is_waiting_and_retried(ctx, tmp_path, applied):
    applied.fail_with["clusterroles"] = 500
    out = _settle(ctx, tmp_path)
    assert out.unit_status == WaitingStatus(
        "the Kubernetes API answered HTTP 500 reading the objects of mlflow-workspaces-rbac.yaml; "
        "retrying on update-status"
    )
    applied.fail_with.clear()
    applied.stall_seconds = 5  # longer than the check's per-call timeout
    applied.stall("clusterroles")
    out = ctx.run(ctx.on.update_status(), out)
    assert isinstance(out.unit_status, WaitingStatus)
    assert out.unit_status.message.startswith("cannot reach the Kubernetes API to check mlflow-workspaces-rbac.yaml")


def test_one_port_for_both_servers_blocks_naming_the_option(ctx, tmp_path, applied, pod_specs):
    out = _settle(ctx, tmp_path, config={**ON, "workspaces_ui_port": 5000})
    assert out.unit_status == BlockedStatus(
        "config option workspaces_ui_port=5000 equals mlflow_port: the dashboard's server needs a port of its own"
    )
    assert pod_specs == []


@pytest.mark.parametrize("ttl", [0, 86401])
def test_a_cache_lifetime_out_of_range_blocks_naming_the_option(ctx, tmp_path, applied, ttl):
    out = _settle(ctx, tmp_path, config={**ON, "workspaces_auth_cache_ttl": ttl})
    assert out.unit_status == BlockedStatus(f"config option workspaces_auth_cache_ttl={ttl} is out of range 1-86400")


# --- the admin's file, after Active ------------------------------------------------


def test_the_admins_file_deleted_after_active_is_named_at_the_next_update_status(ctx, tmp_path, applied):
    """No hook tells the charm that an admin deleted the file: each settled
    update-status asks for its objects, so Active outlives it by one interval."""
    out = _settle(ctx, tmp_path)
    assert out.unit_status == ActiveStatus(workspaces.OVERRIDDEN)
    asked_before, writes_before = len(applied.api_requests), list(applied.writes)
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus(workspaces.OVERRIDDEN)
    asked = applied.api_requests[asked_before:]
    # Settled: reads only, and of the file's objects at most one GET each.
    assert {method for method, _, _ in asked} == {"GET"} and applied.writes == writes_before
    file_reads = [path for _, path, _ in asked if "/clusterroles/" in path or "/networkpolicies/" in path]
    assert len(file_reads) == len(set(file_reads)) == 4, asked

    # `kubectl delete -f mlflow-workspaces-rbac.yaml`: its objects and the operator's grant go.
    for key in [k for k in applied.objects if k[0] in ("clusterroles", "networkpolicies")]:
        del applied.objects[key]
    applied.rules = rbac_rules()
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == BlockedStatus(
        f"enable_workspaces needs mlflow-workspaces-rbac.yaml, not applied: a cluster admin runs `{APPLY}` "
        "(docs/multi-tenant.md)"
    )
    applied.apply_workspaces_rbac()
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus(workspaces.OVERRIDDEN)


def test_one_object_of_the_admins_file_deleted_after_active_is_named(ctx, tmp_path, applied):
    out = _settle(ctx, tmp_path)
    assert out.unit_status == ActiveStatus(workspaces.OVERRIDDEN)
    del applied.objects[("networkpolicies", "kubeflow", "mlflow-server-ui")]
    out = ctx.run(ctx.on.update_status(), out)
    assert isinstance(out.unit_status, BlockedStatus)
    assert out.unit_status.message.startswith("objects of mlflow-workspaces-rbac.yaml missing (mlflow-server-ui)")


def test_with_the_mode_off_a_settled_update_status_asks_nothing_of_the_file(ctx, tmp_path, cluster):
    out = _settle(ctx, tmp_path, config={})
    assert out.unit_status == ActiveStatus()
    asked_before = len(cluster.api_requests)
    out = ctx.run(ctx.on.update_status(), out)
    assert out.unit_status == ActiveStatus()
    asked = cluster.api_requests[asked_before:]
    assert not [path for _, path, _ in asked if "/clusterroles/" in path or "/networkpolicies/" in path], asked
