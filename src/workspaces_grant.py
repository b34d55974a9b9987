"""Is the cluster admin's mlflow-workspaces-rbac.yaml applied? Read-only Kubernetes I/O.

Without it the mode would run but not work: no profile member may use
MLflow (no ClusterRole aggregated into kubeflow-view/-edit/-admin), and any
pod could forge the `kubeflow-userid` header on the UI port (no
NetworkPolicy). The pod spec cannot create either (Juju 2.9 creates
ClusterRoles only for the pod's own service account, and no
NetworkPolicy), so the charm asks whether they exist. The same file grants
the operator `get` on exactly those names; a 403 means it is not applied.
"""

import workspaces
from problems import Blocked, Waiting

CALL_TIMEOUT_SECONDS = 3.0
APPLY = f"a cluster admin runs `kubectl apply -f {workspaces.RBAC_FILE}` (docs/multi-tenant.md)"


def check_admin_grant(app: str, model: str) -> None:
    """Return when every object of the file exists; else raise Blocked naming what
    is missing, or Waiting when the API does not answer. At most four GETs."""
    import httpx
    from lightkube import ApiError, Client, ConfigError
    from lightkube.resources.networking_v1 import NetworkPolicy
    from lightkube.resources.rbac_authorization_v1 import ClusterRole

    missing = []
    try:
        client = Client(namespace=model, timeout=httpx.Timeout(CALL_TIMEOUT_SECONDS))
        for name in workspaces.cluster_role_names(app) + (workspaces.network_policy_name(app),):
            try:
                if name == workspaces.network_policy_name(app):
                    client.get(NetworkPolicy, name, namespace=model)
                else:
                    client.get(ClusterRole, name)
            except ApiError as e:
                if e.status.code in (401, 403):
                    raise Blocked(f"enable_workspaces needs {workspaces.RBAC_FILE}, not applied: {APPLY}") from None
                if e.status.code != 404:
                    raise Waiting(
                        f"the Kubernetes API answered HTTP {e.status.code} reading the objects of "
                        f"{workspaces.RBAC_FILE}; retrying on update-status"
                    ) from None
                missing.append(name)
    except (httpx.TransportError, ConfigError, OSError) as e:
        raise Waiting(
            f"cannot reach the Kubernetes API to check {workspaces.RBAC_FILE} ({type(e).__name__}); "
            "retrying on update-status"
        ) from None
    if missing:
        raise Blocked(f"objects of {workspaces.RBAC_FILE} missing ({', '.join(missing)}): {APPLY}")
