"""Ask Kubernetes whether the MLflow pod is ready: the charm's only Kubernetes I/O.

Pod-spec charms hand the pod to Juju, so the charm cannot see the workload
itself; the operator pod's service account may read pods of its namespace.
"""

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable

from problems import Waiting

if TYPE_CHECKING:  # lightkube is imported only by the hooks that ask Kubernetes
    from lightkube.resources.core_v1 import Pod

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class Readiness:
    """How many pods run the current spec, and how many of those are Ready.

    `expected` is the number of units Juju plans: a pod-spec application runs
    one pod a unit (`juju scale-application`).
    """

    expected: int
    current: int
    ready: int

    def check(self) -> None:
        """Return when every planned pod is Ready; raise Waiting saying how many are."""
        if self.ready >= max(self.expected, 1):
            return
        if self.expected > 1:
            raise Waiting(
                f"{self.ready}/{self.expected} MLflow pods ready: waiting for the pods of the current pod spec "
                "to start and pass /health"
            )
        raise Waiting(NOT_READY if self.current else NO_POD_OF_SPEC)


def count_ready(pods: Iterable["Pod"], annotation: str, revision: str, expected: int) -> Readiness:
    """Pods of `revision` and how many are Ready: a rolling update keeps pods of
    the previous spec Ready while the new ones start (or keep failing), so only
    pods carrying the current revision count."""
    current = [pod for pod in pods if _runs(pod, annotation, revision)]
    return Readiness(expected, len(current), sum(1 for pod in current if _is_ready(pod)))


def planned_pods(planned_units: Callable[[], int]) -> int:
    """The pods Juju plans (one a unit), at least 1."""
    try:
        return max(int(planned_units()), 1)
    except Exception as e:  # noqa: BLE001 - goal-state unavailable: judge by one pod, as before scaling
        logger.warning("cannot read the planned unit count (%s); counting one MLflow pod", type(e).__name__)
        return 1


def check_pod_ready(
    app: str, namespace: str, annotation: str, revision: str, planned_units: Callable[[], int] = lambda: 1
) -> None:
    """Return when every planned pod of `app` that runs spec `revision` is Ready; raise Waiting otherwise."""
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
    count_ready(pods, annotation, revision, planned_pods(planned_units)).check()
