"""The charm's config options, validated into one typed value."""

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Mapping, Tuple

from problems import Blocked

# \Z, not $: "$" also matches before a trailing newline ("mlflow\n").
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_HOST_PATTERN = re.compile(r"^[A-Za-z0-9*._:\[\]-]{1,253}\Z")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9*._:\[\]-]{1,253}\Z")


@dataclass(frozen=True)
class CharmConfig:
    port: int
    bucket: str
    create_bucket: bool
    serve_artifacts: bool
    workers: int
    nodeport_enabled: bool
    nodeport: int
    allowed_hosts: Tuple[str, ...]
    cors_allowed_origins: Tuple[str, ...]
    telemetry: bool
    worker_timeout: int
    multipart_chunk_mib: int
    sync_profiles: bool
    # The most database connections the whole application may hold; 0: MLflow's own pools.
    db_connection_budget: int
    # The multi-tenant mode (src/workspaces.py). Defaults as in config.yaml, so
    # a config read before these options existed renders as it did.
    workspaces: bool = False
    # enable_workspaces forces serve_artifacts on; this says the user had it off.
    serve_artifacts_overridden: bool = False
    workspaces_auth_cache_ttl: int = 300
    workspaces_ui_port: int = 5001


def _option(raw: Mapping[str, Any], name: str, kind: type) -> Any:
    value = raw.get(name)
    # bool is an int in Python; Juju never sends one for the other.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise Blocked(f"config option {name} must be a {kind.__name__}; set it with juju config")
    return value


def _int_in_range(raw: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value: int = _option(raw, name, int)
    return _in_range(name, value, low, high)


def _in_range(name: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise Blocked(f"config option {name}={value} is out of range {low}-{high}")
    return value


def is_valid_bucket_name(name: str) -> bool:
    """S3's bucket naming rules, which MinIO enforces too."""
    if not _BUCKET.match(name) or ".." in name or ".-" in name or "-." in name:
        return False
    if name.startswith("xn--") or name.endswith("-s3alias"):
        return False
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return True
    return False


def _bucket(raw: Mapping[str, Any]) -> str:
    value: str = _option(raw, "default_artifact_root", str)
    if not is_valid_bucket_name(value):
        shown = value if len(value) <= 70 else value[:70] + "…"
        raise Blocked(
            f"config option default_artifact_root={shown!r} is not a valid S3 bucket name "
            "(3-63 chars: a-z 0-9 . -, no s3:// prefix)"
        )
    return value


def _list(raw: Mapping[str, Any], name: str, pattern: "re.Pattern[str]") -> Tuple[str, ...]:
    items = tuple(item.strip() for item in _option(raw, name, str).split(",") if item.strip())
    for item in items:
        if item != "*" and not pattern.match(item):
            raise Blocked(f"config option {name} holds an invalid entry; use a comma-separated list")
    return items


def parse_config(raw: Mapping[str, Any]) -> CharmConfig:
    """Validate every option; raises Blocked naming the first bad one."""
    serve_artifacts: bool = _option(raw, "serve_artifacts", bool)
    # A notebook gets no MinIO keys with workspaces: every artifact goes through the proxy.
    workspaces: bool = _newer(raw, "enable_workspaces", bool, False)
    config = CharmConfig(
        port=_int_in_range(raw, "mlflow_port", 1024, 65535),
        bucket=_bucket(raw),
        create_bucket=_option(raw, "create_default_artifact_root_if_missing", bool),
        serve_artifacts=serve_artifacts or workspaces,
        workers=_int_in_range(raw, "workers", 1, 64),
        nodeport_enabled=_option(raw, "enable_mlflow_nodeport", bool),
        nodeport=_int_in_range(raw, "mlflow_nodeport", 30000, 32767),
        allowed_hosts=_list(raw, "allowed_hosts", _HOST_PATTERN),
        cors_allowed_origins=_list(raw, "cors_allowed_origins", _ORIGIN),
        telemetry=_option(raw, "enable_telemetry", bool),
        worker_timeout=_int_in_range(raw, "worker_timeout", 30, 3600),
        # S3 refuses parts under 5 MiB (but the last) and over 5 GiB.
        multipart_chunk_mib=_int_in_range(raw, "multipart_upload_chunk_size", 5, 5120),
        sync_profiles=_option(raw, "sync_profiles", bool),
        workspaces=workspaces,
        serve_artifacts_overridden=workspaces and not serve_artifacts,
        # The plugin refuses 0 (auth/authorizer.py); a day bounds how long a
        # revoked RoleBinding keeps working.
        workspaces_auth_cache_ttl=_in_range(
            "workspaces_auth_cache_ttl", _newer(raw, "workspaces_auth_cache_ttl", int, 300), 1, 86400
        ),
        workspaces_ui_port=_in_range("workspaces_ui_port", _newer(raw, "workspaces_ui_port", int, 5001), 1024, 65535),
        db_connection_budget=_int_in_range(raw, "db_connection_budget", 0, 100000),
    )
    if config.workspaces and config.workspaces_ui_port == config.port:
        raise Blocked(
            f"config option workspaces_ui_port={config.workspaces_ui_port} equals mlflow_port: "
            "the dashboard's server needs a port of its own"
        )
    return config


def _newer(raw: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    """An option added after the others: absent (an older caller's dict) reads as its default."""
    return default if name not in raw else _option(raw, name, kind)
