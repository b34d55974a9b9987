"""A Kubernetes API server on loopback that answers what the charm asks.

- `GET /api/v1/namespaces/<ns>/pods?labelSelector=...` returns a PodList whose
  pods are as ready as the test says (the readiness check).
- Namespaces (listed with a label selector), and Secrets and PodDefaults
  (kubeflow.org/v1alpha1) in them: get, create, server-side apply (PATCH
  application/apply-patch+yaml, with fieldManager and force), delete, as the
  profile sync uses them. Every write is recorded in `writes`.
- `requests` lists the pod list requests (the readiness check), `api_requests`
  every request as (method, path, query).
- Failures a test switches on: `status_code` (the pod list answers it),
  `forbid(verb, resource)` (403 Forbidden, as RBAC says it), `rules` (a
  ClusterRole's rules, enforced as RBAC does, resourceNames included) and
  `stall(resource)` (the answer comes after `stall_seconds`, i.e. a timeout),
  `fail_with[resource] = code` (every request on it answers that error).
- ClusterRoles (get only) and NetworkPolicies, and `apply_workspaces_rbac()`:
  the objects of mlflow-workspaces-rbac.yaml as an admin applies them.

The charm's lightkube client talks to it over real HTTP through a kubeconfig
file, as it would to a cluster.
"""

import copy
import functools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple
from urllib.parse import parse_qs, urlparse

from fakes.network_guard import SHUTDOWN_POLL

PROFILE_LABELS = {"app.kubernetes.io/part-of": "kubeflow-profile", "pipelines.kubeflow.org/enabled": "true"}
# resource (plural) -> (apiVersion, kind, URL prefix)
KINDS = {
    "secrets": ("v1", "Secret", "/api/v1"),
    "poddefaults": ("kubeflow.org/v1alpha1", "PodDefault", "/apis/kubeflow.org/v1alpha1"),
    "networkpolicies": ("networking.k8s.io/v1", "NetworkPolicy", "/apis/networking.k8s.io/v1"),
}
# Cluster-scoped kinds the charm only reads (enable_workspaces asks whether the admin's file is applied).
CLUSTER_KINDS = {"clusterroles": ("rbac.authorization.k8s.io/v1", "ClusterRole", "/apis/rbac.authorization.k8s.io/v1")}
VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "DELETE": "delete"}


RBAC_FILE = Path(__file__).resolve().parents[2] / "kubeflow-profiles-rbac.yaml"
WORKSPACES_RBAC_FILE = Path(__file__).resolve().parents[2] / "mlflow-workspaces-rbac.yaml"


def rbac_rules() -> List[dict]:
    """The rules of the ClusterRole the README asks the cluster admin to apply."""
    import yaml

    docs = list(yaml.safe_load_all(RBAC_FILE.read_text()))
    return next(d for d in docs if d["kind"] == "ClusterRole")["rules"]


def workspaces_rbac() -> List[dict]:
    """The objects of mlflow-workspaces-rbac.yaml, as a cluster admin applies them."""
    import yaml

    return list(yaml.safe_load_all(WORKSPACES_RBAC_FILE.read_text()))


def reply_json(handler: BaseHTTPRequestHandler, code: int, body: object) -> None:
    """Answer one request with a JSON body, as the API server does."""
    data = json.dumps(body).encode()
    try:
        handler.send_response(code)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
        pass


def _status(code: int, reason: str, message: str) -> dict:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def _matches(labels: Dict[str, str], selector: str) -> bool:
    for term in filter(None, selector.split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class FakeKubernetesApi:
    def __init__(self):
        self.pod_ready = True
        self.pod_count = 1
        self.ready_pods = None  # how many of the pods are Ready; None: all or none, as pod_ready says
        self.pod_annotations = {}
        self.status_code = 200
        self.requests = []
        self.api_requests: List[Tuple[str, str, dict]] = []
        self.namespaces: Dict[str, Dict[str, str]] = {}
        self.objects: Dict[Tuple[str, str, str], dict] = {}  # (resource, namespace, name) -> object
        self.writes: List[Tuple[str, str, str, str]] = []  # (verb, resource, namespace, name)
        self.forbidden: Set[Tuple[str, str]] = set()  # (verb, resource)
        self.failing: Dict[Tuple[str, str], int] = {}  # (verb, resource) -> the HTTP error it answers
        self.stalled: Set[str] = set()
        self.rules: Optional[List[dict]] = None  # RBAC PolicyRules; None allows everything
        self.unserved: Set[str] = set()  # resources whose CRD is not installed: 404 for any path
        self.stall_seconds = 10.0
        self.fail_with: Dict[str, int] = {}  # resource -> an HTTP error code every request on it answers
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _handle(self):
                url = urlparse(self.path)
                query = parse_qs(url.query)
                api.api_requests.append((self.command, url.path, query))
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null") if length else None
                pods = url.path.startswith("/api/v1/namespaces/") and url.path.endswith("/pods")
                if pods:
                    api.requests.append((url.path, query))
                if pods and api.status_code != 200:
                    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": api.status_code}
                    return self._reply(api.status_code, body)
                code, reply = api.answer(self.command, url.path, query, body, self.headers.get("Content-Type", ""))
                self._reply(code, reply)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

            def _reply(self, code, body):
                reply_json(self, code, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True)

    # --- what tests set up and read ---------------------------------------

    def add_namespace(self, name: str, labels: Optional[Dict[str, str]] = None) -> None:
        self.namespaces[name] = dict(labels or {})

    def add_profile(self, name: str) -> None:
        """A namespace as the Kubeflow profile controller makes it."""
        self.add_namespace(name, PROFILE_LABELS)

    def put(self, resource: str, namespace: str, obj: dict) -> None:
        """An object someone else made (not recorded as a write)."""
        self.objects[(resource, namespace, obj["metadata"]["name"])] = copy.deepcopy(obj)

    def apply_workspaces_rbac(self) -> None:
        """`kubectl apply -f mlflow-workspaces-rbac.yaml`: its objects exist, and the
        operator's grant joins whatever `rules` hold."""
        plural = {"ClusterRole": "clusterroles", "NetworkPolicy": "networkpolicies"}
        for obj in workspaces_rbac():
            if obj["kind"] in plural:
                self.put(plural[obj["kind"]], obj["metadata"].get("namespace", ""), obj)
            if obj["kind"] == "ClusterRole" and obj["metadata"]["name"].endswith("-check") and self.rules is not None:
                self.rules = self.rules + obj["rules"]

    def get(self, resource: str, namespace: str, name: str) -> Optional[dict]:
        obj = self.objects.get((resource, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def forbid(self, verb: str, resource: str) -> None:
        self.forbidden.add((verb, resource))

    def stall(self, resource: str) -> None:
        self.stalled.add(resource)

    def apply_spec(self, spec: dict) -> None:
        """What Juju and Kubernetes do after pod-spec-set: the pods carry the new template."""
        self.pod_annotations = dict(((spec.get("kubernetesResources") or {}).get("pod") or {}).get("annotations") or {})

    # --- the API ----------------------------------------------------------

    def answer(self, method: str, path: str, query: dict, body, content_type: str) -> Tuple[int, dict]:
        parts = path.strip("/").split("/")
        if parts == ["api", "v1", "namespaces"]:
            return self._guarded("list", "namespaces", lambda: (200, self._namespace_list(query)))
        if parts[:3] == ["api", "v1", "namespaces"] and parts[4:] == ["pods"]:
            return 200, self.pod_list(parts[3], query.get("labelSelector", [""])[0])
        for resource, (_, _, prefix) in CLUSTER_KINDS.items():
            base = prefix.strip("/").split("/") + [resource]
            if parts[: len(base)] == base and len(parts) == len(base) + 1 and method == "GET":
                answer = functools.partial(self._cluster_object, resource, parts[-1])
                return self._guarded("get", resource, answer, name=parts[-1])
        for resource, (_, _, prefix) in KINDS.items():
            if resource in self.unserved:
                continue
            base = prefix.strip("/").split("/") + ["namespaces"]
            if parts[: len(base)] == base and len(parts) in (len(base) + 2, len(base) + 3):
                if parts[len(base) + 1] != resource:
                    continue
                namespace = parts[len(base)]
                name = parts[len(base) + 2] if len(parts) == len(base) + 3 else None
                verb = VERBS.get(method, method.lower())
                answer = functools.partial(self._object, verb, resource, namespace, name, query, body, content_type)
                return self._guarded(verb, resource, answer, name=None if verb == "create" else name)
        return 404, _status(404, "NotFound", "the server could not find the requested resource")

    def _guarded(self, verb: str, resource: str, answer, name: Optional[str] = None):
        if resource in self.stalled:
            time.sleep(self.stall_seconds)
        if (verb, resource) in self.forbidden or not self._allowed(verb, resource, name):
            return 403, _status(403, "Forbidden", f"{resource} is forbidden: cannot {verb}")
        if resource in self.fail_with:
            code = self.fail_with[resource]
            return code, _status(code, "InternalError", f"{resource}: the server failed")
        code = self.failing.get((verb, resource))
        if code is not None:
            return code, _status(code, "InternalError", f"cannot {verb} {resource} now")
        return answer()

    def _allowed(self, verb: str, resource: str, name: Optional[str]) -> bool:
        if self.rules is None:
            return True
        for rule in self.rules:
            names = rule.get("resourceNames")
            if resource in rule["resources"] and verb in rule["verbs"] and (not names or name in names):
                return True
        return False

    def _cluster_object(self, resource: str, name: str) -> Tuple[int, dict]:
        found = self.objects.get((resource, "", name))
        if found is None:
            return 404, _status(404, "NotFound", f'{resource} "{name}" not found')
        return 200, copy.deepcopy(found)

    def _namespace_list(self, query: dict) -> dict:
        selector = query.get("labelSelector", [""])[0]
        items = [
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": dict(labels)}}
            for name, labels in sorted(self.namespaces.items())
            if _matches(labels, selector)
        ]
        return {"apiVersion": "v1", "kind": "NamespaceList", "metadata": {}, "items": items}

    def _object(self, *args) -> Tuple[int, dict]:
        with self._lock:
            return self._locked_object(*args)

    def _locked_object(self, verb, resource, namespace, name, query, body, content_type) -> Tuple[int, dict]:
        api_version, kind, _ = KINDS[resource]
        if namespace not in self.namespaces:
            return 404, _status(404, "NotFound", f'namespaces "{namespace}" not found')
        if verb == "create":
            name = (body or {}).get("metadata", {}).get("name")
        key = (resource, namespace, name)
        existing = self.objects.get(key)
        if verb == "get":
            if existing is None:
                return 404, _status(404, "NotFound", f'{resource} "{name}" not found')
            return 200, existing
        if verb == "delete":
            if existing is None:
                return 404, _status(404, "NotFound", f'{resource} "{name}" not found')
            del self.objects[key]
            self.writes.append((verb, resource, namespace, name))
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        if verb == "create":
            if existing is not None:
                return 409, _status(409, "AlreadyExists", f'{resource} "{name}" already exists')
            stored = self._stored(body, api_version, kind, namespace, query)
        elif verb == "patch":
            if content_type.split(";")[0] != "application/apply-patch+yaml":
                return 415, _status(415, "UnsupportedMediaType", "only server-side apply is modelled")
            if not query.get("fieldManager"):
                return 422, _status(422, "Invalid", "fieldManager is required for apply patch")
            if (
                existing is not None
                and query.get("force") != ["true"]
                and self._manager(existing) != query["fieldManager"][0]
            ):
                return 409, _status(409, "Conflict", "Apply failed with conflicts")
            stored = self._stored(body, api_version, kind, namespace, query)
        else:
            return 405, _status(405, "MethodNotAllowed", verb)
        self.objects[key] = stored
        self.writes.append((verb, resource, namespace, name))
        return (201 if existing is None else 200), stored

    @staticmethod
    def _manager(obj: dict) -> Optional[str]:
        fields = obj.get("metadata", {}).get("managedFields") or [{}]
        return fields[0].get("manager")

    @staticmethod
    def _stored(body: dict, api_version: str, kind: str, namespace: str, query: dict) -> dict:
        obj = copy.deepcopy(body or {})
        obj["apiVersion"], obj["kind"] = api_version, kind
        metadata = obj.setdefault("metadata", {})
        metadata["namespace"] = namespace
        manager = query.get("fieldManager", [""])[0]
        if manager:
            metadata["managedFields"] = [{"manager": manager, "operation": "Apply"}]
        return obj

    def pod_list(self, namespace, selector):
        app = selector.split("=", 1)[-1]
        pods = [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{app}-{i}",
                    "namespace": namespace,
                    "labels": {"app.kubernetes.io/name": app},
                    "annotations": dict(self.pod_annotations),
                },
                "status": {"conditions": [{"type": "Ready", "status": "True" if self._ready(i) else "False"}]},
            }
            for i in range(self.pod_count)
        ]
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": pods}

    def _ready(self, index: int) -> bool:
        return self.pod_ready if self.ready_pods is None else index < self.ready_pods

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                    "users": [{"name": "fake", "user": {}}],
                    "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                    "current-context": "fake",
                }
            )
        )
        return path

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
