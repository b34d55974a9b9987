"""The peers' relation data: read, validate and parse it; write ours.

Shapes are those of ../shared/CONTRACTS.md. Each endpoint has one reader,
`read_<endpoint>(charm, relations) -> Reading`: what the reader looked at (the
bags the hook's outcome depends on, for the charm's no-op digest) and, on
`value()`, the small typed value or the Problem it raises. A Problem's message
names the relation, the field and the fix, never a value a peer sent (values
can be keys and passwords). Keeping both halves in one reader means the digest
cannot miss a bag the parse depends on.

object-storage and ingress are negotiated with serialized-data-interface
(SDI), imported only when a hook reads them: it pulls in jsonschema and
requests, which no-op hooks need not pay for.
"""

import copy
import functools
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Generic, List, Mapping, Optional, Sequence, TypeVar

import yaml
from ops import CharmBase, Relation

import yaml_text
from problems import Blocked, Problem, Waiting

T = TypeVar("T")

DB = "db"
OBJECT_STORAGE = "object-storage"
INGRESS = "ingress"
POD_DEFAULTS = "pod-defaults"

# The application names the Charmed Kubeflow tutorial deploys, for the
# `juju relate` command a Blocked status suggests.
_RELATE = {
    DB: "juju relate mlflow-db {app}",
    OBJECT_STORAGE: "juju relate minio {app}",
    INGRESS: "juju relate istio-pilot {app}",
    POD_DEFAULTS: "juju relate {app} admission-webhook",
}
_PEER = {DB: "mlflow-db (mariadb)", OBJECT_STORAGE: "minio", INGRESS: "istio-pilot", POD_DEFAULTS: "admission-webhook"}

# \Z, not $: "$" also matches before a trailing newline ("kubeflow\n").
# A Kubernetes name (RFC 1123 label): services, namespaces, Juju models and applications.
DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z")
_DNS_NAME_LABEL = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\Z")
_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?\Z")
_DATABASE_NAME = re.compile(r"^[A-Za-z0-9_$-]{1,64}\Z")
_DB_FIELDS = ("database", "host", "port", "user", "password")
_VERSIONS_KEY = "_supported_versions"


@dataclass(frozen=True)
class ObjectStorage:
    """What minio sends over object-storage."""

    access_key: str
    secret_key: str
    service: str
    port: int
    namespace: Optional[str]
    secure: bool


@dataclass(frozen=True)
class Database:
    """What mariadb sends over db (its root password is never kept)."""

    host: str
    port: int
    name: str
    user: str
    password: str


class Reading(Generic[T]):
    """One endpoint as this hook found it.

    `seen` is what the endpoint's outcome depends on: every bag the parse
    reads (for the charm's settled digest). It costs no import; the parse
    behind `value()` runs on first use only, so a settled hook that only
    compares `seen` never pays for SDI. `value()` is None when unrelated.
    """

    def __init__(
        self,
        endpoint: str,
        relations: Sequence[Relation],
        parse: Callable[[], Optional[T]],
        app_data: bool = True,
        unit_data: bool = False,
    ):
        self.endpoint = endpoint
        self.relations = relations
        self._parse: Optional[Callable[[], Optional[T]]] = parse
        self._bags = (app_data, unit_data)
        self._value: Optional[T] = None
        self._problem: Optional[Problem] = None

    @property
    def related(self) -> bool:
        return bool(self.relations)

    @property
    def seen(self) -> List[Dict[str, Any]]:
        app_data, unit_data = self._bags
        return [
            {
                "id": r.id,
                "app": r.app.name if r.app else None,
                "app_data": dict(r.data[r.app]) if r.app and app_data else {},
                "units": {u.name: dict(r.data[u]) for u in r.units} if unit_data else {},
            }
            for r in self.relations
        ]

    def value(self) -> Optional[T]:
        if self._parse is not None:
            parse, self._parse = self._parse, None
            try:
                self._value = parse()
            except Problem as problem:
                self._problem = problem
        if self._problem is not None:
            raise self._problem
        return self._value


def _first(relations: Sequence[Relation], parse: Callable[[Any], T]) -> Callable[[], Optional[T]]:
    return lambda: parse(relations[0]) if relations else None


def require_relations(endpoints: Sequence[str], app_name: str) -> None:
    """Raise one Blocked naming every missing relation and the command that adds it."""
    if not endpoints:
        return
    commands = ", ".join(f"`{_RELATE[e].format(app=app_name)}`" for e in endpoints)
    raise Blocked(f"missing relation{'s' if len(endpoints) > 1 else ''} {', '.join(endpoints)}: run {commands}")


def _remote_name(relation: Relation) -> str:
    app = getattr(relation, "app", None)
    return app.name if app is not None and app.name else _PEER[relation.name]


# --- SDI endpoints -----------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _sdi_metadata(charm_dir: str) -> Dict[str, Any]:
    # SDI's own get_interfaces reads metadata.yaml from the working directory;
    # the charm directory is where Juju (and Scenario) put it.
    with open(Path(charm_dir) / "metadata.yaml") as f:
        requires: Dict[str, Any] = yaml_text.safe_load(f)["requires"]
    return requires


def _sdi(charm: CharmBase, endpoint: str) -> Any:
    from serialized_data_interface import SerializedDataInterface

    declared = _sdi_metadata(str(charm.charm_dir))[endpoint]
    return SerializedDataInterface(
        charm, endpoint, copy.deepcopy(declared["schema"]), set(declared["versions"]), "requires"
    )


def send_versions(charm: CharmBase, relation: Relation) -> None:
    """Leader: list our schema versions in our app bag, writing only on change."""
    declared = _sdi_metadata(str(charm.charm_dir))[relation.name]
    set_if_changed(relation.data[charm.app], _VERSIONS_KEY, yaml.safe_dump(list(declared["versions"])))


def _negotiated_version(sdi: Any, relation: Relation) -> str:
    from serialized_data_interface import errors

    peer = _remote_name(relation)
    try:
        version: str = sdi.get_version(relation)
        return version
    except errors.UnversionedRelation:
        raise Waiting(f"waiting for {peer} to list its {relation.name} schema versions")
    except errors.IncompatibleVersionsError:
        raise Blocked(
            f"{peer} shares no {relation.name} schema version with this charm "
            f"(it speaks {', '.join(sorted(str(v) for v in sdi.versions))}): upgrade {peer}"
        )
    except Exception:  # noqa: BLE001 - any malformed version list is the peer's fault
        raise Blocked(f"{peer} sent an unreadable {_VERSIONS_KEY} list on {relation.name}: it must be a YAML list")


def _field_of(error: Exception) -> str:
    """The failing field of a jsonschema error, without the value that failed."""
    cause = error.__cause__
    path = [str(p) for p in getattr(cause, "path", [])]
    validator = getattr(cause, "validator", None)
    if validator == "required":
        # "'x' is a required property": the name comes from our own schema.
        missing = re.findall(r"'([^']{1,64})' is a required property", str(getattr(cause, "message", "")))
        return f"missing field {missing[0]!r}" if missing else "a required field is missing"
    if path:
        return f"field {path[0][:64]!r} fails {validator}"
    return f"data fails {validator}" if validator else "data is not valid YAML"


def _has_yaml_aliases(text: str) -> bool:
    """Aliases let a few lines of YAML stand for billions of values ("billion laughs"):
    jsonschema's error message would repr them all, hanging the hook until it is
    killed for memory. No peer needs them; the event stream shows them unexpanded."""
    try:
        return any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return False  # not YAML at all: SDI reports that


def _peer_data(charm: CharmBase, relation: Relation) -> Dict[str, Any]:
    """The remote app's SDI payload, validated against the negotiated version."""
    from serialized_data_interface import errors

    if relation.app is None:
        raise Waiting(f"waiting for the remote application to join {relation.name}")
    sdi = _sdi(charm, relation.name)
    _negotiated_version(sdi, relation)
    peer = _remote_name(relation)
    if _has_yaml_aliases(relation.data[relation.app].get("data") or ""):
        raise Blocked(f"{peer} sent {relation.name} data with YAML aliases: it must be plain YAML, no & or *")
    try:
        return sdi.unwrap(relation).get(relation.app) or {}
    except (errors.RelationDataError, errors.RelationParseError) as e:
        raise Blocked(f"{peer} sent invalid {relation.name} data ({_field_of(e)}): check {peer}'s config")
    except Exception:  # noqa: BLE001 - e.g. data that is YAML but not a mapping
        raise Blocked(f"{peer} sent unreadable {relation.name} data: it must be one YAML mapping")


def read_object_storage(charm: CharmBase, relations: Sequence[Relation]) -> Reading[ObjectStorage]:
    return Reading(OBJECT_STORAGE, relations, _first(relations, lambda r: _object_storage(charm, r)))


def _object_storage(charm: CharmBase, relation: Relation) -> ObjectStorage:
    """Parse minio's object-storage data; Waiting until it has sent it."""
    data = _peer_data(charm, relation)
    peer = _remote_name(relation)
    if not data:
        raise Waiting(f"waiting for {peer} to send object-storage data")
    port = data["port"]
    # range first: float() of a 400-digit integer overflows
    if isinstance(port, bool) or not 1 <= port <= 65535 or not float(port).is_integer():
        raise Blocked(f"{peer} sent an invalid object-storage port: it must be a whole number 1-65535")
    service, namespace = data["service"], data.get("namespace")
    if namespace is not None and not DNS_LABEL.match(service):
        raise Blocked(f"{peer} sent an invalid object-storage service: it must be a Kubernetes service name")
    if namespace is None:
        # The endpoint is then http://<service>:<port>: any host will do.
        service = _endpoint_host(service)
        if service is None:
            raise Blocked(
                f"{peer} sent an invalid object-storage service: with no namespace it must be a host name or IP address"
            )
    if namespace is not None and not DNS_LABEL.match(namespace):
        raise Blocked(f"{peer} sent an invalid object-storage namespace: it must be a Kubernetes namespace name")
    for field in ("access-key", "secret-key"):
        if not data[field]:
            raise Blocked(f"{peer} sent an empty {field} on object-storage: set minio's {field} config")
    for field in ("access-key", "secret-key"):
        if not _sendable_key(field, data[field]):
            # Not MinIO's fault: the request cannot even be made, so retrying is pointless.
            raise Blocked(
                f"{peer} sent an unusable {field} on object-storage: it cannot be sent in an HTTP request; "
                f"set minio's {field} config to printable ASCII"
            )
    return ObjectStorage(
        access_key=data["access-key"],
        secret_key=data["secret-key"],
        service=service,
        port=int(port),
        namespace=namespace,
        secure=data["secure"],
    )


def read_ingress(charm: CharmBase, relations: Sequence[Relation]) -> Reading[Sequence[Relation]]:
    """The ingress relations; each one's schema version is `ingress_version`'s, so
    one istio-pilot that shares no version does not stop the others' routes."""
    return Reading(INGRESS, relations, lambda: relations)


def _endpoint_host(service: str) -> Optional[str]:
    """`service` as the host of a URL's authority, IPv6 unbracketed, or None."""
    bare = service[1:-1] if service.startswith("[") and service.endswith("]") else service
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        address = None
    if address is not None:
        # Brackets only around IPv6; a zone (%eth0) would need escaping in a URL.
        bracketed_ok = bare is service or address.version == 6
        return bare if bracketed_ok and "%" not in bare else None
    if bare is not service:
        return None
    labels = service[:-1].split(".") if service.endswith(".") else service.split(".")
    if len(service) > 253 or not all(_DNS_NAME_LABEL.match(label) for label in labels):
        return None
    if labels[-1].isdigit():
        return None  # resolvers read "10" or "1.2" as an IPv4 address
    return service


def _sendable_key(field: str, key: str) -> bool:
    """Whether botocore can put the key into a request at all.

    The access key travels in the Authorization header: printable ASCII only
    (CR/LF would split the header, non-Latin-1 cannot be encoded, and Latin-1
    would reach MinIO as different bytes). The secret key only feeds the
    signature (as UTF-8) and the pod's env: anything but NUL or a lone surrogate.
    """
    if field == "access-key":
        return all(" " <= c <= "~" for c in key)
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in key


def ingress_version(charm: CharmBase, relation: Relation) -> str:
    """The ingress schema version istio-pilot and this charm agree on."""
    if relation.app is None:
        raise Waiting("waiting for the remote application to join ingress")
    return _negotiated_version(_sdi(charm, INGRESS), relation)


def send_ingress(charm: CharmBase, relation: Relation, version: str, request: Mapping[str, Any]) -> None:
    """Leader: write our ingress request, validated against the agreed version."""
    import jsonschema

    schema = _sdi_metadata(str(charm.charm_dir))[INGRESS]["schema"][version]["requires"]
    jsonschema.validate(instance=dict(request), schema=schema)
    set_if_changed(relation.data[charm.app], "data", yaml.safe_dump(dict(request), sort_keys=True))


# --- db (mysql, not SDI) -----------------------------------------------------


def _valid_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return bool(_HOST_NAME.match(host))


def read_database(charm: CharmBase, relations: Sequence[Relation]) -> Reading[Database]:
    return Reading(DB, relations, _first(relations, _database), unit_data=True)


def _database(relation: Relation) -> Database:
    """Parse the first mariadb unit bag that holds every field; Waiting until one does."""
    peer = _remote_name(relation)
    bags: List[Mapping[str, str]] = [relation.data[unit] for unit in sorted(relation.units, key=lambda u: u.name)]
    complete = [bag for bag in bags if all(bag.get(field) for field in _DB_FIELDS)]
    if not complete:
        have = set().union(*({k for k in _DB_FIELDS if bag.get(k)} for bag in bags)) if bags else set()
        missing = ", ".join(f for f in _DB_FIELDS if f not in have)
        # Every field sent, but split across units: say so rather than "missing: ".
        detail = f"missing: {missing}" if missing else f"no unit has sent all of {', '.join(_DB_FIELDS)}"
        raise Waiting(f"waiting for {peer} to send db data ({detail})")
    bag = complete[0]
    # ASCII digits only: "²".isdigit() is true and int("²") raises
    if not re.fullmatch(r"[0-9]{1,5}", bag["port"]) or not 1 <= int(bag["port"]) <= 65535:
        raise Blocked(f"{peer} sent an invalid db port: it must be a number 1-65535")
    if not _valid_host(bag["host"]):
        raise Blocked(f"{peer} sent an invalid db host: it must be a host name or IP address")
    if not _DATABASE_NAME.match(bag["database"]):
        raise Blocked(f"{peer} sent an unusable database name: set mariadb's database config to letters, digits, _ $ -")
    return Database(
        host=bag["host"], port=int(bag["port"]), name=bag["database"], user=bag["user"], password=bag["password"]
    )


# --- pod-defaults (not SDI) --------------------------------------------------


def read_pod_defaults(charm: CharmBase, relations: Sequence[Relation]) -> Reading[Sequence[Relation]]:
    """admission-webhook sends nothing we use: only which relations there are."""
    return Reading(POD_DEFAULTS, relations, lambda: relations, app_data=False)


def published_pod_defaults(charm: CharmBase, relation: Relation) -> Optional[Dict[str, Any]]:
    """What we published last on this relation; None where nothing (or nothing readable) is."""
    try:
        published = json.loads(relation.data[charm.app].get("pod-defaults") or "null")
    except ValueError:
        return None
    return published if isinstance(published, dict) else None


def publish_pod_defaults(charm: CharmBase, relation: Relation, pod_defaults: Mapping[str, Any]) -> None:
    """Leader: the admission-webhook reads one JSON key from our app bag."""
    set_if_changed(relation.data[charm.app], "pod-defaults", json.dumps(pod_defaults, sort_keys=True))


def set_if_changed(bag: Any, key: str, value: str) -> None:
    """Every relation-set is a hook tool call; skip the ones that change nothing."""
    if bag.get(key) != value:
        bag[key] = value


READERS: Dict[str, Callable[[CharmBase, Sequence[Relation]], Reading[Any]]] = {
    DB: read_database,
    OBJECT_STORAGE: read_object_storage,
    INGRESS: read_ingress,
    POD_DEFAULTS: read_pod_defaults,
}
