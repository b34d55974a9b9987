"""The RBAC objects a Charmed Kubeflow cluster holds, for the fake cluster to decide with.

- Kubeflow's three user-facing ClusterRoles, empty and aggregated by label
  (kubeflow/manifests common/kubeflow-roles: kubeflow-view is labelled into
  kubeflow-edit, kubeflow-edit into kubeflow-admin; each component ships
  `kubeflow-<component>-{admin,edit,view}` roles carrying the
  `rbac.authorization.kubeflow.org/aggregate-to-kubeflow-*` labels).
- The RoleBindings Kubeflow's profile controller makes in a profile namespace
  (kubeflow/kubeflow components/profile-controller/controllers/
  profile_controller.go): `namespaceAdmin` binds the owner (a User) to
  kubeflow-admin; `default-editor` and `default-viewer` bind the namespace's
  service accounts of those names to kubeflow-edit and kubeflow-view. A
  contributor added through the dashboard gets one from KFAM
  (components/access-management/kfam/bindings.go):
  `user-<escaped email>-clusterrole-<edit|view>` to kubeflow-edit or -view.
MLflow's own roles, aggregated into those three, come from the charm's
admin-applied mlflow-workspaces-rbac.yaml itself.
"""

import re
from typing import Dict, List

AGGREGATE = "rbac.authorization.kubeflow.org/aggregate-to-kubeflow-{}"


def _cluster_role(name: str, labels: Dict[str, str], rules: List[dict], aggregate_from: str = "") -> dict:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels},
        "rules": rules,
    }
    if aggregate_from:
        role["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {AGGREGATE.format(aggregate_from): "true"}}]
        }
    return role


def kubeflow_roles() -> List[dict]:
    """kubeflow-admin, -edit and -view as common/kubeflow-roles defines them (rules come by aggregation)."""
    return [
        _cluster_role("kubeflow-admin", {}, [], aggregate_from="admin"),
        _cluster_role("kubeflow-edit", {AGGREGATE.format("admin"): "true"}, [], aggregate_from="edit"),
        _cluster_role("kubeflow-view", {AGGREGATE.format("edit"): "true"}, [], aggregate_from="view"),
    ]


def _binding(namespace: str, name: str, role: str, subject: dict, annotations: Dict[str, str]) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }


def profile_bindings(namespace: str, owner: str) -> List[dict]:
    """What the profile controller makes for a new profile owned by `owner`."""
    user = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": owner}
    return [
        _binding(namespace, "namespaceAdmin", "kubeflow-admin", user, {"role": "admin", "user": owner}),
        _binding(
            namespace,
            "default-editor",
            "kubeflow-edit",
            {"kind": "ServiceAccount", "name": "default-editor", "namespace": namespace},
            {},
        ),
        _binding(
            namespace,
            "default-viewer",
            "kubeflow-view",
            {"kind": "ServiceAccount", "name": "default-viewer", "namespace": namespace},
            {},
        ),
    ]


def contributor_binding(namespace: str, email: str, role: str) -> dict:
    """KFAM's binding for a contributor (`role` is "edit" or "view")."""
    escaped = re.sub(r"[^a-z0-9]", lambda m: "-" if m.group(0) in "@." else "", email.lower())
    user = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": email}
    return _binding(
        namespace, f"user-{escaped}-clusterrole-{role}", f"kubeflow-{role}", user, {"role": role, "user": email}
    )


def global_role_documents(model: str, app: str, rules: List[dict]) -> List[dict]:
    """A pod-spec `serviceAccount` with `global: true` roles, as Juju 2.9 applies it:
    a ClusterRole `<model>-<app>` and its ClusterRoleBinding to the app's service account."""
    name = f"{model}-{app}"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": app, "namespace": model}],
        },
    ]
