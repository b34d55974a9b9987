"""The prometheus_scrape provider's bag, built and checked without Juju."""

import dataclasses
import json

import pytest

import metrics_endpoint as metrics
from contracts import METRICS_ENDPOINT_APP_DATA, MODEL_UUID
from problems import Blocked

SOURCE = metrics.ScrapeSource(
    model="kubeflow",
    model_uuid=MODEL_UUID,
    application="mlflow-server",
    unit="mlflow-server/0",
    charm_name="mlflow-server",
    port=5000,
)


class CountingBag(dict):
    """A relation bag that counts its writes (each one a relation-set hook tool call)."""

    writes = 0

    def __setitem__(self, key, value):
        self.writes += 1
        super().__setitem__(key, value)


def test_the_bag_is_the_contracts_byte_for_byte():
    assert metrics.app_bag(SOURCE) == METRICS_ENDPOINT_APP_DATA


def test_the_job_scrapes_the_service_on_the_mlflow_port():
    jobs = json.loads(metrics.app_bag(dataclasses.replace(SOURCE, port=6123, model="ml"))["scrape_jobs"])
    assert jobs == [
        {"metrics_path": "/metrics", "static_configs": [{"targets": ["mlflow-server.ml.svc.cluster.local:6123"]}]}
    ]


@pytest.mark.parametrize(
    "field, value",
    [
        ("model", "Kube_flow"),
        ("model", "kubeflow\n"),
        ("application", "mlflow server"),
        ("model_uuid", "not-a-uuid"),
        ("model_uuid", "00000000-0000-0000-0000-000000000000"),  # a UUID, but not version 4
        ("model_uuid", MODEL_UUID.upper()),  # prometheus-k8s compares the canonical form
        ("unit", "mlflow-server"),
        ("charm_name", ""),
        ("port", 0),
        ("port", 65536),
        ("port", True),
    ],
)
def test_an_unusable_field_is_blocked_by_name(field, value):
    with pytest.raises(Blocked) as raised:
        metrics.app_bag(dataclasses.replace(SOURCE, **{field: value}))
    assert raised.value.message.startswith(f"cannot publish the metrics-endpoint scrape job: {field} ")


def test_publish_writes_only_what_changed():
    fresh, current, stale = CountingBag(), CountingBag(METRICS_ENDPOINT_APP_DATA), CountingBag(scrape_jobs="[]")
    current.writes = 0
    stale.writes = 0
    metrics.publish([fresh, current, stale], SOURCE)
    assert (fresh.writes, current.writes, stale.writes) == (2, 0, 2)
    assert fresh == current == stale == METRICS_ENDPOINT_APP_DATA


def test_publish_of_an_unusable_source_keeps_what_was_published():
    bag = CountingBag(METRICS_ENDPOINT_APP_DATA)
    bag.writes = 0
    with pytest.raises(Blocked) as raised:
        metrics.publish([bag], dataclasses.replace(SOURCE, model_uuid="x"))
    assert "model_uuid" in raised.value.message
    assert bag == METRICS_ENDPOINT_APP_DATA and bag.writes == 0
