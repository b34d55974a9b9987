"""kubeflow-profiles-rbac.yaml: what the README asks a cluster admin to grant the operator."""

from pathlib import Path

import yaml

import kubeflow_profiles
import mlflow_workload as workload

ROOT = Path(__file__).resolve().parents[2]
DOCS = {d["kind"]: d for d in yaml.safe_load_all((ROOT / "kubeflow-profiles-rbac.yaml").read_text())}


def _rules(resource):
    return [r for r in DOCS["ClusterRole"]["rules"] if resource in r["resources"]]


def test_reads_and_writes_are_limited_to_the_one_name_the_charm_uses():
    name = workload.profile_object_name("mlflow-server")
    for resource in ("secrets", "poddefaults"):
        named = [r for r in _rules(resource) if r.get("resourceNames")]
        unnamed = [r for r in _rules(resource) if not r.get("resourceNames")]
        assert [r["resourceNames"] for r in named] == [[name]]
        assert set(named[0]["verbs"]) == {"get", "patch", "delete"}
        # Kubernetes cannot limit create by name; nothing else is granted unnamed.
        assert [r["verbs"] for r in unnamed] == [["create"]]


def test_no_rule_lists_watches_or_reads_other_secrets():
    for rule in DOCS["ClusterRole"]["rules"]:
        if "secrets" in rule["resources"]:
            assert not {"list", "watch"} & set(rule["verbs"])
            assert "get" not in rule["verbs"] or rule.get("resourceNames")


def test_namespaces_may_only_be_listed():
    assert [r["verbs"] for r in _rules("namespaces")] == [["list"]]


def test_it_binds_the_operator_of_the_tutorials_deployment():
    binding = DOCS["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == DOCS["ClusterRole"]["metadata"]["name"] == "mlflow-server-profiles"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "mlflow-server-operator", "namespace": "kubeflow"}
    ]
    assert "mlflow-server-profiles ClusterRole" in kubeflow_profiles.GRANT_HINT
