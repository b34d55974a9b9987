"""A loopback Kubernetes API that authenticates and authorizes like a real one.

Beside tests/fakes/kubernetes_api.py (the charm's own calls, plain HTTP, no
identity): this one is what MLflow's workspace plugin (mlflow-kubernetes-plugins
2.1.0) and MLflow's `kubernetes-namespaced` client talk to in the workspaces
e2e tests. It serves HTTPS with its own CA, as the in-cluster endpoint does,
and every request must carry a bearer token it issued.

What it answers, and where each shape comes from:

- `GET /api/v1/namespaces` with `labelSelector`, and the same with
  `watch=true` (`resourceVersion`, `timeoutSeconds`, `allowWatchBookmarks`):
  the plugin's NamespaceCache lists, then watches from the list's
  resourceVersion (workspace_plugin/caches.py, `list_namespace` through
  `kubernetes.watch.Watch.stream`). A watch is a chunked stream of JSON lines
  `{"type": "ADDED"|"MODIFIED"|"DELETED", "object": {...}}`; `BOOKMARK` lines
  carry only `metadata.resourceVersion` when the client asked for them; a
  resourceVersion older than the kept history answers one `ERROR` line with a
  410 Status, which the client raises as ApiException(410) and the plugin
  answers with a fresh list (kubernetes/watch/watch.py `unmarshal_event` and
  `stream`; apiserver semantics of watch, bookmarks and "Expired").
- `GET /apis/mlflow.kubeflow.org/v1/mlflowconfigs` (list and watch, all
  namespaces): the plugin's MlflowConfigCache (`list_cluster_custom_object`);
  404 when the CRD is not installed (`crd_installed = False`), as it is then.
- `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`: the token
  mode's check, posted with the caller's own token (auth/authorizer.py); the
  answer is the request with `status.allowed` (authorization/v1 types).
- `POST /apis/authorization.k8s.io/v1/subjectaccessreviews`: the header
  mode's check, posted with the server's token for `spec.user`/`spec.groups`;
  the poster needs `create` on subjectaccessreviews itself.
- No TokenReview: the plugin never calls it (it reads the JWT's `sub` only for
  logs, auth/core.py `_parse_jwt_subject`) and relies on the API server
  rejecting a bad token with 401 in the review call.
- Anything else: 404 once authenticated and authorized; 401 without a valid
  token; 403 when RBAC says no (Status objects as the API server writes them).

Authentication: `issue_token(user, groups)` makes a JWT-shaped token signed
with this server's key (HMAC; a real cluster signs service-account tokens with
RS256, which changes nothing here); a token with any changed byte is refused.
Service accounts get the API server's names: user
`system:serviceaccount:<ns>:<name>`, groups `system:serviceaccounts`,
`system:serviceaccounts:<ns>`, `system:authenticated`.

Authorization is RBAC from the objects a test `load`s: ClusterRoles (with
`aggregationRule.clusterRoleSelectors[].matchLabels`, resolved on every check
as the aggregation controller would keep them), Roles, RoleBindings and
ClusterRoleBindings, subjects of kind User, Group and ServiceAccount; rules
match on apiGroups, resources (`resource/subresource`), verbs and
resourceNames, `*` included (k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac).
"""

import base64
import copy
import hashlib
import hmac
import json
import secrets
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple
from urllib.parse import parse_qs, urlparse

from fakes.kubernetes_api import _status, reply_json  # meta/v1 Status; a JSON answer
from fakes.network_guard import SHUTDOWN_POLL

PROFILE_LABELS = {"app.kubernetes.io/part-of": "kubeflow-profile", "pipelines.kubeflow.org/enabled": "true"}
MLFLOW_GROUP = "mlflow.kubeflow.org"
AUTHZ_PREFIX = "/apis/authorization.k8s.io/v1/"
MLFLOWCONFIGS = f"/apis/{MLFLOW_GROUP}/v1/mlflowconfigs"
# How much event history a watch can resume from; older versions get 410 Gone.
HISTORY = 1000
# A watch never outlives this, whatever timeoutSeconds asks (the plugin asks
# 300 s; the client reconnects from the last resourceVersion either way).
MAX_WATCH_SECONDS = 30.0
BOOKMARK_EVERY = 5.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def selector_matches(labels: Dict[str, str], selector: str) -> bool:
    """Equality-based label selectors (`k=v`, `k==v`, `k!=v`, `k`, `!k`), comma-joined terms all holding."""
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, value = term.replace("==", "=").split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def service_account_user(namespace: str, name: str) -> Tuple[str, List[str]]:
    """The user and groups the API server gives a service account's token."""
    return (
        f"system:serviceaccount:{namespace}:{name}",
        ["system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"],
    )


class FakeCluster:
    """Start with `with FakeCluster(workdir) as cluster:`; `cluster.url`, `cluster.ca_file`."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._key = secrets.token_bytes(32)
        self._lock = threading.Condition()
        self._version = 100
        self.namespaces: Dict[str, dict] = {}
        self.mlflowconfigs: Dict[Tuple[str, str], dict] = {}
        self.crd_installed = True
        # (resourceVersion, collection, type, object) of every change, newest last
        self._events: List[Tuple[int, str, str, dict]] = []
        self.rbac: Dict[Tuple[str, str, str], dict] = {}  # (kind, namespace or "", name) -> object
        self.reviews: List[Tuple[str, dict]] = []  # (kind, spec) of every access review asked
        self.requests: List[Tuple[str, str, Optional[str]]] = []  # (method, path, user or None)
        self._stopping = threading.Event()
        self.ca_file, key_file = self._certificate()
        cluster = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                user = cluster.authenticate(self.headers.get("Authorization", ""))
                cluster.requests.append((self.command, url.path, user[0] if user else None))
                if user is None:
                    return self._reply(401, _status(401, "Unauthorized", "Unauthorized"))
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    return self._reply(400, _status(400, "BadRequest", "the body is not JSON"))
                if query.get("watch") in ("true", "1") and self.command == "GET":
                    return cluster._watch(self, user, url.path, query)
                code, reply = cluster.answer(self.command, url.path, query, body, user)
                self._reply(code, reply)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def _reply(self, code, body):
                reply_json(self, code, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host, self.port = "127.0.0.1", self.server.server_address[1]
        self.url = f"https://{self.host}:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(SHUTDOWN_POLL,), daemon=True)

    def _certificate(self) -> Tuple[Path, Path]:
        """A self-signed serving certificate for 127.0.0.1, which is also the CA a pod's ca.crt holds."""
        cert, key = self.workdir / "ca.crt", self.workdir / "apiserver.key"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", "1", "-subj", "/CN=kube-apiserver",
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:kubernetes.default.svc",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
                "-keyout", str(key), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return cert, key

    def __enter__(self) -> "FakeCluster":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        with self._lock:
            self._lock.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # --- identities -------------------------------------------------------

    def issue_token(self, user: str, groups: Iterable[str] = ()) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {"iss": "https://kubernetes.default.svc", "sub": user, "groups": list(groups), "iat": int(time.time())}
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return f"{header}.{payload}.{signature}"

    def service_account_token(self, namespace: str, name: str) -> str:
        return self.issue_token(*service_account_user(namespace, name))

    def authenticate(self, authorization: str) -> Optional[Tuple[str, List[str]]]:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.count(".") != 2:
            return None
        header, payload, signature = token.strip().split(".")
        expected = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature, expected):
            return None
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return claims["sub"], list(claims.get("groups") or [])

    # --- objects ----------------------------------------------------------

    def _record(self, collection: str, kind: str, obj: dict) -> None:
        """A change with a new resourceVersion, woken watches see it (caller holds the lock)."""
        self._version += 1
        obj["metadata"]["resourceVersion"] = str(self._version)
        self._events.append((self._version, collection, kind, copy.deepcopy(obj)))
        del self._events[:-HISTORY]
        self._lock.notify_all()

    def add_namespace(self, name: str, labels: Optional[Dict[str, str]] = None) -> None:
        with self._lock:
            kind = "MODIFIED" if name in self.namespaces else "ADDED"
            obj = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": name, "labels": dict(labels or {}), "uid": secrets.token_hex(8)},
                "status": {"phase": "Active"},
            }
            self.namespaces[name] = obj
            self._record("namespaces", kind, obj)

    def add_profile(self, name: str) -> None:
        """A namespace as Kubeflow's profile controller makes it."""
        self.add_namespace(name, PROFILE_LABELS)

    def delete_namespace(self, name: str) -> None:
        with self._lock:
            obj = self.namespaces.pop(name)
            self._record("namespaces", "DELETED", obj)

    def put_mlflowconfig(self, namespace: str, obj: dict) -> None:
        with self._lock:
            obj = copy.deepcopy(obj)
            obj.setdefault("apiVersion", f"{MLFLOW_GROUP}/v1")
            obj.setdefault("kind", "MLflowConfig")
            obj["metadata"]["namespace"] = namespace
            key = (namespace, obj["metadata"]["name"])
            kind = "MODIFIED" if key in self.mlflowconfigs else "ADDED"
            self.mlflowconfigs[key] = obj
            self._record("mlflowconfigs", kind, obj)

    def load(self, documents: Iterable[dict]) -> None:
        """RBAC objects (ClusterRole, Role, ClusterRoleBinding, RoleBinding) as `kubectl apply` would store them."""
        for doc in documents:
            if not doc:
                continue
            kind, meta = doc["kind"], doc["metadata"]
            if kind not in ("ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding"):
                raise ValueError(f"cannot load a {kind} into the fake cluster's RBAC")
            namespace = meta.get("namespace", "") if kind in ("Role", "RoleBinding") else ""
            if kind in ("Role", "RoleBinding") and not namespace:
                raise ValueError(f"{kind} {meta['name']} has no namespace")
            self.rbac[(kind, namespace, meta["name"])] = copy.deepcopy(doc)

    def unload(self, kind: str, namespace: str, name: str) -> None:
        del self.rbac[(kind, namespace, name)]

    # --- RBAC -------------------------------------------------------------

    def _cluster_role_rules(self, name: str, visited: Optional[set] = None) -> List[dict]:
        """A ClusterRole's rules with its aggregation resolved transitively, as the
        aggregation controller converges to (Kubeflow's kubeflow-view is aggregated
        into kubeflow-edit, which is aggregated into kubeflow-admin)."""
        visited = set() if visited is None else visited
        role = self.rbac.get(("ClusterRole", "", name))
        if role is None or name in visited:
            return []
        visited.add(name)
        rules = list(role.get("rules") or [])
        for selector in (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []:
            wanted = selector.get("matchLabels") or {}
            for (kind, _, other), obj in list(self.rbac.items()):
                labels = obj["metadata"].get("labels") or {}
                if kind == "ClusterRole" and all(labels.get(k) == v for k, v in wanted.items()):
                    rules.extend(self._cluster_role_rules(other, visited))
        return rules

    @staticmethod
    def _subject_matches(subject: dict, user: str, groups: List[str], binding_namespace: str) -> bool:
        kind = subject.get("kind")
        if kind == "User":
            return subject.get("name") == user
        if kind == "Group":
            return subject.get("name") in groups
        if kind == "ServiceAccount":
            namespace = subject.get("namespace") or binding_namespace
            return user == f"system:serviceaccount:{namespace}:{subject.get('name')}"
        return False

    @staticmethod
    def _rule_allows(rule: dict, attrs: dict) -> bool:
        def has(values, value):
            return "*" in (values or []) or value in (values or [])

        resource = attrs.get("resource", "")
        if attrs.get("subresource"):
            resource = f"{resource}/{attrs['subresource']}"
        names = rule.get("resourceNames") or []
        return (
            has(rule.get("apiGroups"), attrs.get("group", ""))
            and has(rule.get("resources"), resource)
            and has(rule.get("verbs"), attrs.get("verb", ""))
            and (not names or attrs.get("name") in names)
        )

    def authorize(self, user: str, groups: List[str], attrs: dict) -> bool:
        """Does RBAC let `user` do `attrs` (group, resource, subresource, verb, namespace, name)?"""
        namespace = attrs.get("namespace") or ""
        rules: List[dict] = []
        for (kind, where, _), binding in list(self.rbac.items()):
            if kind == "ClusterRoleBinding" or (kind == "RoleBinding" and namespace and where == namespace):
                if not any(self._subject_matches(s, user, groups, where) for s in binding.get("subjects") or []):
                    continue
                ref = binding["roleRef"]
                if ref["kind"] == "ClusterRole":
                    rules.extend(self._cluster_role_rules(ref["name"]))
                else:
                    rules.extend((self.rbac.get(("Role", where, ref["name"])) or {}).get("rules") or [])
        return any(self._rule_allows(rule, attrs) for rule in rules)

    # --- the API ----------------------------------------------------------

    def _forbidden(self, user: str, verb: str, resource: str, group: str = "") -> Tuple[int, dict]:
        where = f' in API group "{group}"' if group else ""
        message = (
            f'{resource} is forbidden: User "{user}" cannot {verb} resource "{resource}"{where} at the cluster scope'
        )
        return 403, _status(403, "Forbidden", message)

    def _collection(self, path: str) -> Optional[Tuple[str, str]]:
        """(collection, API group) of a cluster-wide list path this server serves."""
        if path == "/api/v1/namespaces":
            return "namespaces", ""
        if path == MLFLOWCONFIGS and self.crd_installed:
            return "mlflowconfigs", MLFLOW_GROUP
        return None

    def _items(self, collection: str, selector: str) -> List[dict]:
        source = self.namespaces.values() if collection == "namespaces" else self.mlflowconfigs.values()
        return [copy.deepcopy(o) for o in source if selector_matches(o["metadata"].get("labels") or {}, selector)]

    def answer(self, method: str, path: str, query: dict, body, user) -> Tuple[int, dict]:
        name, groups = user
        if method == "POST" and path.startswith(AUTHZ_PREFIX):
            return self._review(path[len(AUTHZ_PREFIX) :], body or {}, name, groups)
        collection = self._collection(path)
        if collection is None:
            if path.startswith("/api/v1/secrets") and not self.authorize(
                name, groups, {"group": "", "resource": "secrets", "verb": "list"}
            ):
                return self._forbidden(name, "list", "secrets")
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        resource, group = collection
        if method != "GET":
            return 405, _status(405, "MethodNotAllowed", method)
        if not self.authorize(name, groups, {"group": group, "resource": resource, "verb": "list"}):
            return self._forbidden(name, "list", resource, group)
        with self._lock:
            items = self._items(resource, query.get("labelSelector", ""))
            version = str(self._version)
        if resource == "namespaces":
            api_version, kind = "v1", "NamespaceList"
        else:
            api_version, kind = f"{MLFLOW_GROUP}/v1", "MLflowConfigList"
        return 200, {"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": version}, "items": items}

    def _review(self, plural: str, body: dict, user: str, groups: List[str]) -> Tuple[int, dict]:
        spec = body.get("spec") or {}
        if plural == "selfsubjectaccessreviews":
            subject_user, subject_groups = user, groups
        elif plural == "subjectaccessreviews":
            if not self.authorize(
                user, groups, {"group": "authorization.k8s.io", "resource": "subjectaccessreviews", "verb": "create"}
            ):
                return self._forbidden(user, "create", "subjectaccessreviews", "authorization.k8s.io")
            subject_user, subject_groups = spec.get("user") or "", list(spec.get("groups") or [])
        else:
            return 404, _status(404, "NotFound", "the server could not find the requested resource")
        attrs = spec.get("resourceAttributes") or {}
        self.reviews.append((plural, copy.deepcopy(spec)))
        allowed = self.authorize(subject_user, subject_groups, attrs)
        kind = "SelfSubjectAccessReview" if plural == "selfsubjectaccessreviews" else "SubjectAccessReview"
        reply = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": kind,
            "metadata": {"creationTimestamp": None},
            "spec": spec,
            "status": {"allowed": allowed, "reason": "RBAC: allowed" if allowed else ""},
        }
        if not allowed:
            reply["status"]["denied"] = False  # RBAC never denies outright: it only fails to allow
        return 201, reply

    def _watch(self, handler: BaseHTTPRequestHandler, user, path: str, query: dict) -> None:
        name, groups = user
        collection = self._collection(path)
        if collection is None:
            return handler._reply(404, _status(404, "NotFound", "the server could not find the requested resource"))
        resource, group = collection
        if not self.authorize(name, groups, {"group": group, "resource": resource, "verb": "watch"}):
            code, body = self._forbidden(name, "watch", resource, group)
            return handler._reply(code, body)
        selector = query.get("labelSelector", "")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = min(float(query.get("timeoutSeconds") or MAX_WATCH_SECONDS), MAX_WATCH_SECONDS)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def send(event: dict) -> None:
            line = json.dumps(event).encode() + b"\n"
            handler.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            handler.wfile.flush()

        deadline = time.monotonic() + timeout
        try:
            with self._lock:
                since = query.get("resourceVersion") or "0"
                if since == "0":  # no version: the current state first, as synthetic ADDED events
                    pending = [("ADDED", o) for o in self._items(resource, selector)]
                    seen = self._version
                else:
                    seen = int(since)
                    oldest = self._events[0][0] if self._events else self._version
                    if seen < oldest - 1:
                        pending = [("ERROR", _status(410, "Expired", f"too old resource version: {seen} ({oldest})"))]
                        seen = -1
                    else:
                        pending = []
            next_bookmark = time.monotonic() + BOOKMARK_EVERY
            while True:
                for kind, obj in pending:
                    send({"type": kind, "object": obj})
                if seen < 0:
                    break
                with self._lock:
                    now = time.monotonic()
                    if now >= deadline or self._stopping.is_set():
                        break
                    fresh = [e for e in self._events if e[0] > seen and e[1] == resource]
                    if not fresh:
                        self._lock.wait(timeout=min(deadline, next_bookmark) - now)
                        fresh = [e for e in self._events if e[0] > seen and e[1] == resource]
                    pending = [
                        (kind, obj)
                        for _, _, kind, obj in fresh
                        if selector_matches(obj["metadata"].get("labels") or {}, selector)
                    ]
                    if fresh:
                        seen = fresh[-1][0]
                    version = self._version
                if bookmarks and not pending and time.monotonic() >= next_bookmark:
                    kind_name = "Namespace" if resource == "namespaces" else "MLflowConfig"
                    api_version = "v1" if resource == "namespaces" else f"{MLFLOW_GROUP}/v1"
                    mark = {"kind": kind_name, "apiVersion": api_version, "metadata": {"resourceVersion": str(version)}}
                    pending = [("BOOKMARK", mark)]
                    next_bookmark = time.monotonic() + BOOKMARK_EVERY
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        handler.close_connection = True

    # --- how a pod reaches it ---------------------------------------------

    def pod_identity(self, directory: Path, namespace: str, service_account: str) -> Path:
        """The files a pod's service account mount holds (token, ca.crt, namespace), and a kubeconfig beside them."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        token = self.service_account_token(namespace, service_account)
        (directory / "token").write_text(token)
        (directory / "namespace").write_text(namespace)
        (directory / "ca.crt").write_bytes(self.ca_file.read_bytes())
        return directory

    def kubeconfig(self, path: Path, token: str, namespace: str) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {"name": "fake", "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)}}
                    ],
                    "users": [{"name": "fake", "user": {"token": token}}],
                    "contexts": [
                        {"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}
                    ],
                    "current-context": "fake",
                }
            )
        )
        return path
