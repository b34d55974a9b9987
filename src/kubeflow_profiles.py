"""MLflow in every Kubeflow profile namespace: the charm's only writes outside its model.

The pod spec cannot place objects in other namespaces (Juju creates its
custom resources in the model's namespace), so the charm applies a Secret
and a PodDefault (rendered purely by mlflow_workload.profile_objects) into
each namespace labelled as a Kubeflow profile, with the operator's own
Kubernetes credentials.

Why the operator's service account, not `credential-get`: Juju 2.9's hook
tool refuses `credential-get` on every Kubernetes model, trusted or not
(worker/uniter/runner/context/context.go, HookContext.CloudSpec), and
`juju trust` does not widen a pod-spec charm's operator role. The cluster
admin grants the operator a narrow ClusterRole instead (README: Every
Kubeflow profile); until then every call here gets 403 and nothing changes.

Ownership is by labels: an object of our name without all of OWNER labels
is someone else's and is left alone, reported. Each call has a short
timeout, the whole sync a budget; a transport failure stops the sync at
once (the next call would stall the same way).
"""

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple, Type

from problems import Blocked, Degraded

if TYPE_CHECKING:  # lightkube is imported only by the hooks that sync profiles
    from lightkube import Client

Manifest = Dict[str, Any]

logger = logging.getLogger(__name__)
for _name in ("httpx", "httpcore", "lightkube"):
    logging.getLogger(_name).setLevel(logging.WARNING)

PROFILE_LABEL = "app.kubernetes.io/part-of"
PROFILE_VALUE = "kubeflow-profile"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "mlflow-server"
APP_LABEL = "mlflow-server.charm/app"
MODEL_LABEL = "mlflow-server.charm/model"
FIELD_MANAGER = "mlflow-server-charm"
# A sync costs one list, then two reads a namespace (one a kind) and a write
# only where ours differs; the budget bounds many namespaces on a slow API.
CALL_TIMEOUT_SECONDS = 3.0
SYNC_BUDGET_SECONDS = 20.0
GRANT_HINT = "grant the operator the mlflow-server-profiles ClusterRole (README: Every Kubeflow profile)"
CRD_HINT = "check that admission-webhook's PodDefault kind is installed; retried at the next hook"
NOT_GRANTED_MESSAGE = (
    "the operator may not list Kubeflow profile namespaces; juju trust mlflow-server cannot give a "
    "pod-spec charm that on Juju 2.9: " + GRANT_HINT
)


# What profiles_marker says while the operator may not list namespaces.
NOT_GRANTED = "not granted"


class NotGranted(Exception):
    """The operator may not list namespaces: the admin has not granted access."""


def owner_labels(app: str, model: str) -> Dict[str, str]:
    return {MANAGED_BY_LABEL: MANAGED_BY, APP_LABEL: app, MODEL_LABEL: model}


# Profiles are a copy for notebooks: while the API fails in a way that may
# pass, MLflow still serves and the unit stays Active, saying so (Degraded).
def unreachable(error: BaseException) -> Degraded:
    return Degraded(
        f"profile sync failing: cannot reach the Kubernetes API ({type(error).__name__}); retrying at the next hook"
    )


@dataclass
class SyncReport:
    namespaces: List[str] = field(default_factory=list)
    created: List[str] = field(default_factory=list)
    updated: List[str] = field(default_factory=list)
    deleted: List[str] = field(default_factory=list)
    unchanged: List[str] = field(default_factory=list)
    foreign: List[str] = field(default_factory=list)  # "ns/Kind" we did not make: left alone
    refused: List[str] = field(default_factory=list)  # "verb ns/Kind (HTTP code)"
    unfinished: List[str] = field(default_factory=list)  # namespaces the budget did not reach

    def check(self, name: str) -> None:
        """Raise what a person must act on (Blocked) or what the next hook retries (Degraded)."""
        if self.foreign:
            raise Blocked(
                f"{_few(self.foreign)} named {name} not created by this charm, left alone: "
                "delete it to let the charm manage it, or set sync_profiles=false"
            )
        if self.refused:
            codes = " ".join(self.refused)
            if all(f"HTTP {code}" not in codes for code in _NEEDS_A_PERSON):
                raise Degraded(
                    f"profile sync failing: the Kubernetes API answered {_few(self.refused)}; retrying at the next hook"
                )
            # 404 on a create: the namespace went, or no PodDefault kind (no admission-webhook).
            hint = GRANT_HINT if "HTTP 403" in codes or "HTTP 401" in codes else CRD_HINT
            raise Blocked(f"the Kubernetes API refused {_few(self.refused)}: {hint}")
        if self.unfinished:
            raise Degraded(
                f"profile sync incomplete: ran out of time before {_few(self.unfinished)}; retrying at the next hook"
            )

    def results(self) -> Dict[str, str]:
        """Action results: namespace/kind lists, never object contents."""
        fields = ("namespaces", "created", "updated", "deleted", "unchanged", "foreign", "refused", "unfinished")
        return {key: ", ".join(getattr(self, key)) or "-" for key in fields}


# Refusals no retry mends: no grant (401, 403), no PodDefault kind (404), our object rejected (422).
_NEEDS_A_PERSON = (400, 401, 403, 404, 422)


def _few(items: List[str], shown: int = 3) -> str:
    more = len(items) - shown
    return ", ".join(items[:shown]) + (f" and {more} more" if more > 0 else "")


def connect(namespace: str) -> "Client":
    """A client with the operator pod's credentials (KUBECONFIG outside a pod)."""
    import httpx
    from lightkube import Client

    return Client(namespace=namespace, timeout=httpx.Timeout(CALL_TIMEOUT_SECONDS), field_manager=FIELD_MANAGER)


def _transport_errors() -> Tuple[Type[BaseException], ...]:
    import httpx
    from lightkube import ConfigError

    return (httpx.TransportError, ConfigError, OSError)


def sync_profiles(name: str, objects: Dict[str, Optional[Manifest]], app: str, model: str) -> SyncReport:
    """List the profiles, then sync each. Raises NotGranted, or Degraded when unreachable."""
    client = _client(model)
    return sync(client, name, objects, owner_labels(app, model), list_profiles(client))


def profiles_marker(model: str) -> str:
    """What a settled hook compares to learn whether a profile came or went:
    the profile names, or "not granted". One request. Raises Degraded."""
    try:
        return "\n".join(list_profiles(_client(model)))
    except NotGranted:
        return NOT_GRANTED


def _client(model: str) -> "Client":
    try:
        return connect(model)
    except _transport_errors() as e:
        raise unreachable(e) from None


def list_profiles(client: "Client") -> List[str]:
    """Names of the profile namespaces, sorted. NotGranted on 403; Degraded on another failure."""
    from lightkube import ApiError
    from lightkube.resources.core_v1 import Namespace

    try:
        items = client.list(Namespace, labels={PROFILE_LABEL: PROFILE_VALUE})
        return sorted(ns.metadata.name for ns in items if ns.metadata is not None and ns.metadata.name)
    except ApiError as e:
        if e.status.code in (401, 403):
            raise NotGranted() from None
        raise Degraded(
            f"profile sync failing: the Kubernetes API answered HTTP {e.status.code} listing Kubeflow profiles; "
            "retrying at the next hook"
        )
    except _transport_errors() as e:
        raise unreachable(e) from None


def _resource(kind: str) -> Any:
    if kind == "Secret":
        from lightkube.resources.core_v1 import Secret

        return Secret
    from lightkube.generic_resource import create_namespaced_resource

    return create_namespaced_resource("kubeflow.org", "v1alpha1", "PodDefault", "poddefaults")


def _owned(obj: Any, labels: Dict[str, str]) -> bool:
    present = obj.metadata.labels or {}
    return all(present.get(k) == v for k, v in labels.items())


def _body(manifest: Manifest) -> Manifest:
    """The parts we set and compare: everything but metadata."""
    return {k: v for k, v in manifest.items() if k not in ("metadata", "apiVersion", "kind")}


def _stamped(manifest: Manifest, namespace: str, labels: Dict[str, str]) -> Manifest:
    metadata = dict(manifest["metadata"], namespace=namespace)
    metadata["labels"] = {**(metadata.get("labels") or {}), **labels}
    return dict(manifest, metadata=metadata)


def sync(
    client: "Client",
    name: str,
    objects: Dict[str, Optional[Manifest]],
    labels: Dict[str, str],
    namespaces: List[str],
    budget: float = SYNC_BUDGET_SECONDS,
) -> SyncReport:
    """Make each namespace hold `objects` (kind: manifest, or None: none of ours).

    Raises Degraded when the API stops answering; what is already done stays.
    """
    from lightkube import ApiError, codecs

    report = SyncReport(namespaces=list(namespaces))
    deadline = time.monotonic() + budget
    # Apply in the given order, remove in reverse: a PodDefault never points at a missing Secret.
    order = [k for k, m in objects.items() if m is not None] + [k for k, m in reversed(objects.items()) if m is None]
    for index, namespace in enumerate(namespaces):
        if time.monotonic() > deadline:
            report.unfinished = namespaces[index:]
            break
        for kind in order:
            where = f"{namespace}/{kind}"
            resource, manifest = _resource(kind), objects[kind]
            verb = "get"
            try:
                try:
                    existing = client.get(resource, name, namespace=namespace)
                except ApiError as e:
                    if e.status.code != 404:
                        raise
                    existing = None
                if existing is not None and not _owned(existing, labels):
                    report.foreign.append(where)
                    continue
                if manifest is None:
                    if existing is not None:
                        verb = "delete"
                        client.delete(resource, name, namespace=namespace)
                        report.deleted.append(where)
                    continue
                wanted = _stamped(manifest, namespace, labels)
                if existing is None:
                    verb = "create"
                    # lightkube's stubs leave namespace= out for namespaced objects; a PATCH
                    # (apply) ignores the object's own namespace without it.
                    client.create(codecs.from_dict(wanted), namespace=namespace)  # type: ignore[call-overload]
                    report.created.append(where)
                elif _owned_differs(existing.to_dict(), wanted):
                    verb = "patch"
                    client.apply(codecs.from_dict(wanted), namespace=namespace, force=True)  # type: ignore[call-overload]
                    report.updated.append(where)
                else:
                    report.unchanged.append(where)
            except ApiError as e:
                report.refused.append(f"{verb} {where} (HTTP {e.status.code})")
            except _transport_errors() as e:
                logger.info("profile sync stopped at %s: %s", where, type(e).__name__)
                raise unreachable(e) from None
    return report


def _owned_differs(existing: Manifest, wanted: Manifest) -> bool:
    labels = (existing.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in wanted["metadata"]["labels"].items()):
        return True
    current = _body(existing)
    return any(current.get(k) != v for k, v in _body(wanted).items())
