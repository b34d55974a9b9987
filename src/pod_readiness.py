"""Ask Kubernetes whether the MLflow pod is ready: the charm's only Kubernetes I/O.

Pod-spec charms hand the pod to Juju, so the charm cannot see the workload
itself; the operator pod's service account may read pods of its namespace.
"""

import logging
from typing import TYPE_CHECKING

from problems import Waiting

if TYPE_CHECKING:  # lightkube is imported only by the hooks that ask Kubernetes
    from lightkube.resources.core_v1 import Pod

# httpx logs every request line at INFO; the charm reports outcomes itself.
for _name in ("httpx", "httpcore", "lightkube"):
    logging.getLogger(_name).setLevel(logging.WARNING)

TIMEOUT_SECONDS = 5
NO_POD_OF_SPEC = "waiting for Kubernetes to start the MLflow pod of the current pod spec"
NOT_READY = "waiting for the MLflow pod to pass its /health readiness probe"


def _runs(pod: "Pod", annotation: str, revision: str) -> bool:
    meta = pod.metadata
    if meta is None or meta.deletionTimestamp is not None:
        return False
    return (meta.annotations or {}).get(annotation) == revision


def _is_ready(pod: "Pod") -> bool:
    if pod.status is None:
        return False
    conditions = pod.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def check_pod_ready(app: str, namespace: str, annotation: str, revision: str) -> None:
    """Return when a pod of `app` that runs spec `revision` is Ready; raise Waiting otherwise.

    A rolling update keeps the previous pod Ready while the new one starts
    (or keeps failing), so only a pod carrying the current revision counts.
    """
    try:
        import httpx
        from lightkube import Client
        from lightkube.resources.core_v1 import Pod

        client = Client(namespace=namespace, timeout=httpx.Timeout(TIMEOUT_SECONDS))
        pods = list(client.list(Pod, namespace=namespace, labels={"app.kubernetes.io/name": app}))
    except Exception as e:  # noqa: BLE001 - no kubeconfig, RBAC, DNS, timeouts: all mean "cannot tell"
        raise Waiting(
            f"cannot ask the Kubernetes API whether the MLflow pod is ready ({type(e).__name__}); "
            "re-checked on update-status"
        )
    current = [pod for pod in pods if _runs(pod, annotation, revision)]
    if not current:
        raise Waiting(NO_POD_OF_SPEC)
    if not any(_is_ready(pod) for pod in current):
        raise Waiting(NOT_READY)
