"""Find the charm's secrets wherever a Scenario run could leak them.

The secrets are those the charm is given: minio's secret-key (object-storage),
mariadb's password and root_password (db), taken from each run's input state,
plus the CONTRACTS.md values. After every run, `LeakCheck.after_run` looks for
them in what Juju, a cluster user or a notebook user could read:

    sink                                   may hold
    log lines (juju-log, Python logging)   nothing
    unit and app status (and history)      nothing
    pod spec, minus Secret `data`          nothing (plain env, command, args, ...)
    action results, action logs, failure   the MinIO secret key, in get-minio-credentials only
    our relation data bags                 the MinIO secret key, in pod-defaults only
    stored state                           nothing

How a secret is looked for depends on how distinctive its value is. A value of
8+ characters with 4+ distinct ones that is not a plain word (minio123, the
values the hardening tests use) is looked for verbatim, URL-quoted and base64-encoded, anywhere in a sink.
Short or common values (the contract's DB password is the word "password", its
root password "root": words the charm rightly prints as field names) cannot be
searched for verbatim without flagging every "missing: password"; those are
looked for in the shapes a leak takes: inside a URI's credentials (":pw@"), or
next to a secret field name (password: pw, 'password': 'pw', password=pw), and
as an exact plain env value. Whatever the values, the pod spec's plain env,
command and args must hold no URI with credentials at all.
"""

import base64
import json
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Set
from urllib.parse import quote

import yaml

from contracts import MARIADB_UNIT_DATA, MINIO_SECRET_KEY

MINIO = "minio-secret-key"
DB_PASSWORD = "db-password"
ROOT_PASSWORD = "db-root-password"
ACTION_ALLOWED = {"get-minio-credentials": {MINIO}}
RELATION_ALLOWED = {"pod-defaults": {MINIO}}

_SECRET_FIELDS = (
    "password",
    "root_password",
    "secret-key",
    "secret_key",
    "secret-access-key",
    "AWS_SECRET_ACCESS_KEY",
    "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY",
)
CREDENTIAL_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s/@:]*:[^\s/@]+@")


@dataclass(frozen=True)
class Secret:
    kind: str
    value: str

    @property
    def distinctive(self) -> bool:
        v = self.value
        return len(v) >= 8 and len(set(v)) >= 4 and not v.isalpha()

    def needles(self) -> Set[str]:
        v = self.value
        # surrogatepass: a fuzzed key may hold lone surrogates, which UTF-8 refuses.
        quoted = quote(v, safe="", errors="surrogatepass")
        forms = {f":{v}@", f":{quoted}@"}
        for field in _SECRET_FIELDS:
            forms |= {f"{field}: {v}", f"'{field}': '{v}'", f'"{field}": "{v}"', f"{field}={v}"}
        if self.distinctive:
            once = json.dumps(v, ensure_ascii=False)[1:-1]
            twice = json.dumps(once, ensure_ascii=False)[1:-1]  # JSON inside a JSON-dumped sink
            forms |= {v, quoted, base64.b64encode(v.encode("utf-8", "surrogatepass")).decode(), once, twice}
        return forms


CONTRACT_SECRETS = frozenset(
    {
        Secret(MINIO, MINIO_SECRET_KEY),
        Secret(DB_PASSWORD, MARIADB_UNIT_DATA["password"]),
        Secret(ROOT_PASSWORD, MARIADB_UNIT_DATA["root_password"]),
    }
)


def secrets_of(state) -> Set[Secret]:
    """Every secret value the state hands the charm, plus the contract's."""
    found = set(CONTRACT_SECRETS)
    for relation in state.relations:
        if relation.endpoint == "object-storage":
            try:
                data = yaml.safe_load(relation.remote_app_data.get("data", ""))
            except yaml.YAMLError:
                data = None
            if isinstance(data, dict) and isinstance(data.get("secret-key"), str):
                found.add(Secret(MINIO, data["secret-key"]))
        elif relation.endpoint == "db":
            bags = [relation.remote_app_data, *relation.remote_units_data.values()]
            for bag in bags:
                for field, kind in (("password", DB_PASSWORD), ("root_password", ROOT_PASSWORD)):
                    if bag.get(field):
                        found.add(Secret(kind, bag[field]))
    return {s for s in found if s.value.strip()}


def leaks_in(text: str, secrets: Iterable[Secret], allowed: Set[str] = frozenset()) -> List[str]:
    secrets = list(secrets)
    # Blank out the secrets this sink may hold first: a DB password that equals
    # (or is part of) the MinIO key is not a leak where the MinIO key belongs.
    for s in secrets:
        if s.kind in allowed:
            once = json.dumps(s.value, ensure_ascii=False)[1:-1]
            twice = json.dumps(once, ensure_ascii=False)[1:-1]  # JSON inside a JSON-dumped bag
            for form in sorted({s.value, once, twice}, key=len, reverse=True):
                text = text.replace(form, "\x00")
    return sorted({s.kind for s in secrets if s.kind not in allowed and any(n in text for n in s.needles())})


def _without_secret_data(spec: Dict[str, Any]) -> Dict[str, Any]:
    spec = json.loads(json.dumps(spec, default=str))
    for secret in (spec.get("kubernetesResources") or {}).get("secrets") or []:
        secret.pop("data", None)
        secret.pop("stringData", None)
    return spec


def plain_container_values(spec: Dict[str, Any]) -> List[str]:
    """Every plain env value, command and args word of every container."""
    values: List[str] = []
    for container in spec.get("containers") or []:
        values += [str(w) for w in container.get("command") or []]
        values += [str(w) for w in container.get("args") or []]
        for value in (container.get("envConfig") or {}).values():
            if not isinstance(value, dict):  # {secret: {name: ...}} is a reference, not a value
                values.append(str(value))
    return values


class LeakCheck:
    """Per test: remembers every leak found so the test fails even if the charm swallowed it."""

    def __init__(self):
        self.findings: List[str] = []
        self.runs = 0

    def after_run(
        self,
        *,
        event,
        state_in,
        state_out,
        log_lines: List[str],
        statuses: List[str],
        specs: List[Dict[str, Any]],
        action_output: Optional[Dict[str, Any]],
    ) -> List[str]:
        self.runs += 1
        secrets = secrets_of(state_in)
        where = f"event {event.path}"
        found: List[str] = []

        def look(sink: str, text: str, allowed: Set[str] = frozenset()) -> None:
            for kind in leaks_in(text, secrets, allowed):
                found.append(f"{where}: {kind} in {sink}")

        for line in log_lines:
            look("a log line", line)
        for message in statuses:
            look("a status message", message)
        for spec in specs:
            look("the pod spec outside Secret data", json.dumps(_without_secret_data(spec), ensure_ascii=False))
            for value in plain_container_values(spec):
                if CREDENTIAL_URI.search(value):
                    found.append(f"{where}: a URI with credentials in the pod spec's plain env/command/args")
                for s in secrets:
                    if len(s.value) >= 4 and value == s.value:
                        found.append(f"{where}: {s.kind} as a plain env value/argument")
        if action_output is not None:
            allowed = ACTION_ALLOWED.get(event.action.name, set())
            look(f"action {event.action.name} output", json.dumps(action_output, ensure_ascii=False), allowed)
        if state_out is not None:
            for relation in state_out.relations:
                allowed = RELATION_ALLOWED.get(relation.endpoint, set())
                for bag in (relation.local_app_data, relation.local_unit_data):
                    look(f"our {relation.endpoint} relation data", json.dumps(dict(bag), ensure_ascii=False), allowed)
            for stored in state_out.stored_states:
                look("stored state", json.dumps(dict(stored.content), default=str, ensure_ascii=False))
        self.findings += found
        return found
