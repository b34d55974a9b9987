"""src/workspaces.py, the multi-tenant mode's pure room, and the admin's mlflow-workspaces-rbac.yaml."""

import re
from pathlib import Path

import pytest
import yaml

import mlflow_workload as workload
import workspaces
from charm_config import parse_config
from helpers import DATABASE, DEFAULT_CONFIG, STORAGE, config
from pod_spec import PodSpecInputs, render_pod_spec
from problems import Blocked

ROOT = Path(__file__).resolve().parents[2]
RBAC = list(yaml.safe_load_all((ROOT / workspaces.RBAC_FILE).read_text()))


def _doc(kind, name):
    return next(d for d in RBAC if d["kind"] == kind and d["metadata"]["name"] == name)


# --- config ---------------------------------------------------------------------


def test_the_mode_forces_serve_artifacts_on_and_remembers_it_was_off():
    on = config(enable_workspaces=True)
    assert on.serve_artifacts and on.serve_artifacts_overridden
    assert not config(enable_workspaces=True, serve_artifacts=True).serve_artifacts_overridden
    assert not config(serve_artifacts=False).serve_artifacts_overridden


def test_an_older_callers_config_without_the_new_options_reads_as_their_defaults():
    old = {k: v for k, v in DEFAULT_CONFIG.items() if "workspaces" not in k}
    assert parse_config(old) == config()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"enable_workspaces": "yes"}, "config option enable_workspaces must be a bool"),
        ({"workspaces_auth_cache_ttl": 0}, "config option workspaces_auth_cache_ttl=0 is out of range 1-86400"),
        ({"workspaces_ui_port": 80}, "config option workspaces_ui_port=80 is out of range 1024-65535"),
        ({"enable_workspaces": True, "workspaces_ui_port": 5000}, "config option workspaces_ui_port=5000 equals"),
    ],
)
def test_bad_options_block_naming_them(changes, message):
    with pytest.raises(Blocked, match=re.escape(message)):
        config(**changes)


def test_the_same_port_is_fine_while_the_mode_is_off():
    assert config(workspaces_ui_port=5000).workspaces_ui_port == 5000


def _render(c):
    return render_pod_spec(PodSpecInputs("mlflow-server", "kubeflow", {"imagePath": "x:3.17.2"}, c, DATABASE, STORAGE))


def test_mode_off_renders_byte_for_byte_as_if_the_mode_did_not_exist():
    """The mode's other options change nothing while it is off: today's spec stays today's."""
    old = {k: v for k, v in DEFAULT_CONFIG.items() if "workspaces" not in k}
    for serve in (False, True):
        today = _render(parse_config({**old, "serve_artifacts": serve}))
        assert _render(config(serve_artifacts=serve, workspaces_auth_cache_ttl=7, workspaces_ui_port=6000)) == today
        assert "workspaces" not in today and "serviceAccount" not in today


def test_mode_on_renders_yaml_with_both_servers():
    spec = yaml.safe_load(_render(config(enable_workspaces=True)))
    assert [c["name"] for c in spec["containers"]] == ["mlflow-db-upgrade", "mlflow-server", "mlflow-ui"]
    assert spec["serviceAccount"] == workspaces.service_account()
    assert spec["kubernetesResources"]["customResourceDefinitions"] == workspaces.custom_resource_definitions()


# --- the image ------------------------------------------------------------------


def test_an_image_older_than_3_17_blocks_naming_the_command():
    with pytest.raises(Blocked, match=r"has MLflow 3\.16: .*juju attach-resource mlflow-server oci-image="):
        workspaces.check_image("x/mlflow:3.16.0")
    workspaces.check_image("x/mlflow:3.17.2")
    workspaces.check_image("x/mlflow:custom")  # unknown: the pod's readiness tells


# --- the servers ----------------------------------------------------------------


def test_the_ui_server_is_the_token_servers_command_on_its_own_port():
    token = ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--app-name", "kubernetes-auth"]
    ui = workspaces.ui_command(token, config(enable_workspaces=True, workspaces_ui_port=5055))
    assert ui == ["mlflow", "server", "--host", "0.0.0.0", "--port", "5055", "--app-name", "kubernetes-auth"]
    assert token[5] == "5000", "the token server's command is left as it was"


def test_both_servers_keep_the_worker_timeout_uvicorn_reads():
    server_env = workload.server_env(config(worker_timeout=90), STORAGE, "mlflow-server", "kubeflow")
    for env in (
        workspaces.token_server_env(server_env, config(worker_timeout=90)),
        workspaces.ui_server_env(server_env, config(worker_timeout=90), "h"),
    ):
        assert env["UVICORN_TIMEOUT_WORKER_HEALTHCHECK"] == "90"
        assert "MLFLOW_UVICORN_OPTS" not in env


def test_only_the_ui_server_trusts_headers_and_groups_split_as_oidc_authservice_joins_them():
    c = config(enable_workspaces=True)
    token = workspaces.token_server_env({"A": "1"}, c)
    ui = workspaces.ui_server_env({"A": "1"}, c, "ui-host")
    assert token["A"] == ui["A"] == "1"
    assert not any(k.startswith("MLFLOW_K8S_AUTH_REMOTE") for k in token)
    assert ui["MLFLOW_K8S_AUTH_REMOTE_GROUPS_SEPARATOR"] == ","
    assert ui["MLFLOW_SERVER_ALLOWED_HOSTS"] == "ui-host"


# The field names Juju 2.9's strict decoder knows (juju-2.9.31: caas/specs/rbac.go,
# caas/kubernetes/provider/specs/customresourcedefinition.go, and the
# apiextensions v1 types of k8s.io/apiextensions-apiserver v0.21.10, its go.mod pin).
SERVICE_ACCOUNT_FIELDS = {"automountServiceAccountToken", "roles"}
ROLE_FIELDS = {"name", "global", "rules"}
RULE_FIELDS = {"verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs"}
CRD_FIELDS = {"name", "labels", "annotations", "spec"}
CRD_SPEC_FIELDS = {"group", "names", "scope", "versions", "conversion", "preserveUnknownFields"}
CRD_VERSION_FIELDS = {
    "name", "served", "storage", "deprecated", "deprecationWarning", "schema", "subresources",
    "additionalPrinterColumns",
}  # fmt: skip
SCHEMA_FIELDS = {
    "description", "type", "format", "title", "default", "maximum", "exclusiveMaximum", "minimum",
    "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems", "uniqueItems",
    "multipleOf", "enum", "maxProperties", "minProperties", "required", "items", "allOf", "oneOf", "anyOf",
    "not", "properties", "additionalProperties", "nullable", "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource", "x-kubernetes-int-or-string", "x-kubernetes-list-map-keys",
    "x-kubernetes-list-type", "x-kubernetes-map-type",
}  # fmt: skip


def _schemas(schema):
    yield schema
    for child in (schema.get("properties") or {}).values():
        yield from _schemas(child)


def test_the_service_account_uses_only_fields_juju_2_9_decodes_strictly():
    account = workspaces.service_account()
    assert set(account) <= SERVICE_ACCOUNT_FIELDS
    for role in account["roles"]:
        assert set(role) <= ROLE_FIELDS and role["global"] is True and role["rules"]
        assert all(set(rule) <= RULE_FIELDS for rule in role["rules"])


def test_the_crd_uses_only_fields_juju_2_9_decodes_strictly():
    """No x-kubernetes-validations (CEL): v0.21 has no such field, and Juju refuses the spec."""
    [crd] = workspaces.custom_resource_definitions()
    assert set(crd) <= CRD_FIELDS and set(crd["spec"]) <= CRD_SPEC_FIELDS
    for version in crd["spec"]["versions"]:
        assert set(version) <= CRD_VERSION_FIELDS
        for schema in _schemas(version["schema"]["openAPIV3Schema"]):
            assert set(schema) <= SCHEMA_FIELDS, set(schema) - SCHEMA_FIELDS


@pytest.mark.parametrize(
    "path, valid",
    [("", True), ("team/a", True), (".cache/x", True), ("/abs", False), ("../up", False), ("a/../b", False)],
)
def test_the_crd_refuses_an_artifact_path_that_leaves_the_bucket_root(path, valid):
    assert bool(re.match(workspaces.RELATIVE_PATH, path)) is valid


# --- notebooks ------------------------------------------------------------------


def test_the_pod_defaults_payload_carries_no_key_and_the_auth_mode():
    payload = workload.pod_defaults(config(enable_workspaces=True), STORAGE, "mlflow-server", "kubeflow")
    assert payload == {
        "minio": {
            "env": {
                "MLFLOW_TRACKING_URI": "http://mlflow-server.kubeflow.svc.cluster.local:5000",
                "MLFLOW_TRACKING_AUTH": "kubernetes-namespaced",
                "MLFLOW_EXPERIMENT_NAME": "Default",
            }
        }
    }


def test_withdrawn_keys_keep_the_auth_mode():
    published = {"minio": {"env": {"MLFLOW_TRACKING_URI": "u", "MLFLOW_TRACKING_AUTH": "kubernetes-namespaced"}}}
    assert workload.without_minio_keys(published) == published


def test_every_kind_but_the_pod_default_is_withdrawn_from_profiles():
    today = {"Secret": {"kind": "Secret"}, "SeldonSecret": {"kind": "Secret"}, "PodDefault": {"kind": "PodDefault"}}
    assert workspaces.profile_objects(today, {"kind": "keyless"}) == {
        "Secret": None,
        "SeldonSecret": None,
        "PodDefault": {"kind": "keyless"},
    }
    objects = workload.profile_objects(config(enable_workspaces=True), STORAGE, "mlflow-server", "kubeflow")
    assert objects["Secret"] is None
    assert [e["name"] for e in objects["PodDefault"]["spec"]["env"]] == [
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_AUTH",
        "MLFLOW_EXPERIMENT_NAME",
    ]


# --- mlflow-workspaces-rbac.yaml --------------------------------------------------


@pytest.mark.parametrize("level", ["view", "edit", "admin"])
def test_the_cluster_roles_cover_the_plugins_resources_and_aggregate_into_kubeflows(level):
    role = _doc("ClusterRole", f"mlflow-server-workspaces-{level}")
    assert role["metadata"]["labels"] == {f"rbac.authorization.kubeflow.org/aggregate-to-kubeflow-{level}": "true"}
    assert {g for r in role["rules"] for g in r["apiGroups"]} == {"mlflow.kubeflow.org"}
    main = role["rules"][0]
    assert tuple(main["resources"]) == workspaces.RESOURCES
    if level == "view":
        assert role["rules"] == [main] and main["verbs"] == ["get", "list"]
    else:
        assert main["verbs"] == ["get", "list", "create", "update", "delete"]
        assert role["rules"][1] == {
            "apiGroups": ["mlflow.kubeflow.org"],
            "resources": list(workspaces.USE_SUBRESOURCES),
            "verbs": ["create"],
        }


def test_only_the_gateways_pods_reach_the_ui_port_and_the_token_port_stays_open():
    policy = _doc("NetworkPolicy", workspaces.network_policy_name("mlflow-server"))
    spec = policy["spec"]
    assert policy["metadata"]["namespace"] == "kubeflow"
    assert spec["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "mlflow-server"}}
    ui, token = spec["ingress"]
    assert ui["ports"] == [{"protocol": "TCP", "port": config().workspaces_ui_port}]
    # One peer with both selectors: the gateway's pods in kubeflow, not all of kubeflow.
    assert ui["from"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}},
            "podSelector": {"matchLabels": {"app": "istio-ingressgateway", "istio": "ingressgateway"}},
        }
    ]
    assert token == {"ports": [{"protocol": "TCP", "port": config().port}]}


def test_the_operator_may_only_get_the_files_own_objects():
    check = _doc("ClusterRole", "mlflow-server-workspaces-check")
    names = {n for r in check["rules"] for n in r["resourceNames"]}
    assert names == set(workspaces.cluster_role_names("mlflow-server")) | {"mlflow-server-ui"}
    assert all(r["verbs"] == ["get"] for r in check["rules"])
    binding = _doc("ClusterRoleBinding", "mlflow-server-workspaces-check")
    assert binding["roleRef"]["name"] == "mlflow-server-workspaces-check"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlflow-server-operator", "namespace": "kubeflow"}
    ]


def test_no_rule_grants_secrets():
    assert "secrets" not in {res for d in RBAC for r in d.get("rules", []) for res in r["resources"]}
    assert "secrets" not in str(workspaces.service_account())


MODE_ON_RENDER = r"""
import sys
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
from helpers import DATABASE, STORAGE, config
from pod_spec import PodSpecInputs, render_pod_spec
inputs = PodSpecInputs("mlflow-server", "kubeflow", {"imagePath": "x:3.17.2"},
                       config(enable_workspaces=True, allowed_hosts="a.example.com"), DATABASE, STORAGE)
sys.stdout.write(render_pod_spec(inputs))
"""


def test_mode_on_renders_the_same_bytes_whatever_the_hash_seed():
    """The global role, the CRD and the second server are part of the hashed spec:
    a varying order would restart the pod on every hook."""
    import os
    import subprocess
    import sys

    here = Path(__file__).resolve().parent
    renders = {
        subprocess.run(
            [sys.executable, "-c", MODE_ON_RENDER, str(ROOT / "src"), str(here)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            check=True,
            capture_output=True,
            timeout=120,
        ).stdout
        for seed in ("0", "1", "4242")
    }
    assert len(renders) == 1 and b"mlflow-ui" in next(iter(renders))
