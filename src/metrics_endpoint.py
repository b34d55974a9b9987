"""The metrics-endpoint relation (interface prometheus_scrape): where Prometheus finds MLflow's /metrics.

The shape is the one prometheus-k8s reads (its charm library
charms.prometheus_k8s.v0.prometheus_scrape, LIBAPI 0): two JSON strings in
our app bag, written by the leader alone.

    scrape_metadata  {"application", "charm_name", "model", "model_uuid", "unit"}:
                     Prometheus labels every series with it (juju_model, ...) and
                     prefixes the job name with it. It refuses a model_uuid that
                     is not a version-4 UUID, so we check that first.
    scrape_jobs      a list of Prometheus scrape_config subsets; ours is one job,
                     metrics_path /metrics on the application's Service.

Why the Service and not the unit addresses: a pod-spec charm's units run in the
operator pod, so a unit's own address is not where MLflow listens; the pods
Juju creates sit behind the one Service `<app>.<model>.svc.cluster.local`,
whose name MLflow 3.5+'s host check always lets through. A target that names
no unit address stays one job labelled with the application, which is what
these metrics are. We write no unit bag: prometheus-k8s uses unit addresses
to expand `*` targets and to tie a target whose host is a unit's address to
that unit; neither applies to a Service.

The library itself is not on PyPI (charmcraft fetch-lib vendors it, with cosl);
this module is the provider's side of it, small and typed.
"""

import json
import re
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, MutableMapping

from problems import Blocked
from relation_data import DNS_LABEL

ENDPOINT = "metrics-endpoint"
# prometheus-flask-exporter's route, which `mlflow server --expose-prometheus` mounts.
METRICS_PATH = "/metrics"

# \Z, not $: "$" also matches before a trailing newline.
_UNIT = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?/[0-9]{1,9}\Z")  # a unit name


@dataclass(frozen=True)
class ScrapeSource:
    """Who we are to Prometheus (its Juju topology) and the port MLflow serves on."""

    model: str
    model_uuid: str
    application: str
    unit: str
    charm_name: str
    port: int


def _is_uuid4(text: str) -> bool:
    # The same test prometheus-k8s applies before it labels anything with the UUID.
    try:
        return str(uuid.UUID(text, version=4)) == text
    except (ValueError, TypeError, AttributeError):
        return False


def _check(source: ScrapeSource) -> None:
    def blocked(field: str, rule: str) -> Blocked:
        return Blocked(f"cannot publish the {ENDPOINT} scrape job: {field} {rule}")

    if not DNS_LABEL.match(source.model):
        raise blocked("model", "is not a Kubernetes namespace name")
    if not DNS_LABEL.match(source.application):
        raise blocked("application", "is not a Kubernetes service name")
    if not _is_uuid4(source.model_uuid):
        raise blocked("model_uuid", "is not a version-4 UUID, which Prometheus requires")
    if not _UNIT.match(source.unit):
        raise blocked("unit", "is not a Juju unit name")
    if not DNS_LABEL.match(source.charm_name):
        raise blocked("charm_name", "is not a charm name")
    if isinstance(source.port, bool) or not isinstance(source.port, int) or not 1 <= source.port <= 65535:
        raise blocked("port", "is not 1-65535")


def scrape_jobs(source: ScrapeSource) -> List[Dict[str, Any]]:
    target = f"{source.application}.{source.model}.svc.cluster.local:{source.port}"
    return [{"metrics_path": METRICS_PATH, "static_configs": [{"targets": [target]}]}]


def scrape_metadata(source: ScrapeSource) -> Dict[str, str]:
    topology = asdict(source)
    del topology["port"]
    return topology


def app_bag(source: ScrapeSource) -> Dict[str, str]:
    """Our app bag on every metrics-endpoint relation; Blocked naming the field that cannot go in it."""
    _check(source)
    return {
        "scrape_jobs": json.dumps(scrape_jobs(source), sort_keys=True),
        "scrape_metadata": json.dumps(scrape_metadata(source), sort_keys=True),
    }


def publish(bags: List[MutableMapping[str, str]], source: ScrapeSource) -> None:
    """Leader: write the bag into each relation's app bag, only the keys that changed.

    Raises Blocked instead of writing when a field is unusable: what was
    published before stays, so Prometheus keeps scraping the last good target.
    """
    from relation_data import set_if_changed

    wanted = app_bag(source)
    for bag in bags:
        for key, value in wanted.items():
            set_if_changed(bag, key, value)
