"""metrics-endpoint: the leader tells Prometheus where MLflow's /metrics is, in prometheus_scrape's shape."""

import dataclasses
import json

import pytest
import scenario
from scenario import ActiveStatus
from scenario.mocking import _MockModelBackend

import world
from contracts import METRICS_ENDPOINT_APP_DATA, MODEL, MODEL_UUID, PROMETHEUS_APP_DATA

METRICS_ID = 9


def metrics_relation(**changes) -> scenario.Relation:
    base = {
        "endpoint": "metrics-endpoint",
        "interface": "prometheus_scrape",
        "id": METRICS_ID,
        "remote_app_name": "prometheus-k8s",
        "remote_app_data": dict(PROMETHEUS_APP_DATA),
    }
    base.update(changes)
    return scenario.Relation(**base)


def with_metrics(state: scenario.State, uuid: str = MODEL_UUID, **changes) -> scenario.State:
    others = {r for r in state.relations if r.endpoint != "metrics-endpoint"}
    return dataclasses.replace(
        state, model=scenario.Model(name=MODEL, uuid=uuid), relations=others | {metrics_relation(**changes)}
    )


def metrics_bag(state: scenario.State) -> dict:
    return dict(state.get_relation(METRICS_ID).local_app_data)


def unit_bag(state: scenario.State) -> dict:
    return dict(state.get_relation(METRICS_ID).local_unit_data)


@pytest.fixture
def relation_sets(monkeypatch):
    """(relation id, key) of every relation-set hook tool call."""
    calls = []
    real = _MockModelBackend.relation_set

    def recording(self, relation_id, key, value, is_app):
        calls.append((relation_id, key))
        return real(self, relation_id, key, value, is_app)

    monkeypatch.setattr(_MockModelBackend, "relation_set", recording)
    return calls


@pytest.fixture
def published(ctx, tmp_path):
    """The tutorial's deployment, Active, after `juju relate prometheus-k8s mlflow-server`."""
    state = with_metrics(world.settled(ctx, tmp_path))
    out = ctx.run(ctx.on.relation_created(state.get_relation(METRICS_ID)), state)
    assert metrics_bag(out) == METRICS_ENDPOINT_APP_DATA
    return out


def test_relating_prometheus_publishes_the_exact_bag_and_keeps_active(ctx, tmp_path):
    state = with_metrics(world.settled(ctx, tmp_path))
    assert state.unit_status == ActiveStatus()
    out = ctx.run(ctx.on.relation_created(state.get_relation(METRICS_ID)), state)
    assert metrics_bag(out) == METRICS_ENDPOINT_APP_DATA
    assert out.unit_status == ActiveStatus()
    # The target is the Service: no unit address goes out, so nothing per unit.
    assert unit_bag(out) == unit_bag(state)


def test_the_bag_reads_as_prometheus_reads_it(published):
    jobs = json.loads(metrics_bag(published)["scrape_jobs"])
    metadata = json.loads(metrics_bag(published)["scrape_metadata"])
    assert jobs == [
        {
            "metrics_path": "/metrics",
            "static_configs": [{"targets": ["mlflow-server.kubeflow.svc.cluster.local:5000"]}],
        }
    ]
    assert metadata == {
        "model": "kubeflow",
        "model_uuid": MODEL_UUID,
        "application": "mlflow-server",
        "unit": "mlflow-server/0",
        "charm_name": "mlflow-server",
    }


def test_the_job_follows_mlflow_port(ctx, published):
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(published, config={"mlflow_port": 6000}))
    jobs = json.loads(metrics_bag(out)["scrape_jobs"])
    assert jobs[0]["static_configs"] == [{"targets": ["mlflow-server.kubeflow.svc.cluster.local:6000"]}]
    assert metrics_bag(out)["scrape_metadata"] == METRICS_ENDPOINT_APP_DATA["scrape_metadata"]


def test_a_bad_mlflow_port_blocks_naming_it_and_keeps_the_published_job(ctx, published):
    out = ctx.run(ctx.on.config_changed(), dataclasses.replace(published, config={"mlflow_port": 80}))
    assert out.unit_status.name == "blocked"
    assert "mlflow_port" in out.unit_status.message
    assert metrics_bag(out) == METRICS_ENDPOINT_APP_DATA


def test_a_bad_mlflow_port_when_relating_writes_nothing(ctx, tmp_path):
    state = with_metrics(world.state(tmp_path, config={"mlflow_port": 80}))
    out = ctx.run(ctx.on.relation_created(state.get_relation(METRICS_ID)), state)
    assert metrics_bag(out) == {}
    out = ctx.run(ctx.on.config_changed(), out)
    assert out.unit_status.name == "blocked" and "mlflow_port" in out.unit_status.message
    assert metrics_bag(out) == {}


@pytest.mark.parametrize("event", ["config_changed", "leader_elected", "upgrade_charm", "relation_joined"])
def test_an_unchanged_job_is_not_written_again(ctx, published, relation_sets, event):
    rel = published.get_relation(METRICS_ID)
    hook = getattr(ctx.on, event)(rel, remote_unit=0) if event == "relation_joined" else getattr(ctx.on, event)()
    out = ctx.run(hook, published)
    assert [key for rid, key in relation_sets if rid == METRICS_ID] == []
    assert metrics_bag(out) == METRICS_ENDPOINT_APP_DATA


@pytest.mark.parametrize("event", ["relation_created", "config_changed", "upgrade_charm"])
def test_a_non_leader_writes_nothing(ctx, tmp_path, relation_sets, event):
    state = with_metrics(world.state(tmp_path, leader=False))
    rel = state.get_relation(METRICS_ID)
    out = ctx.run(ctx.on.relation_created(rel) if event == "relation_created" else getattr(ctx.on, event)(), state)
    assert [key for rid, key in relation_sets if rid == METRICS_ID] == []
    assert metrics_bag(out) == {}
    assert unit_bag(out) == unit_bag(state)


def test_a_new_leader_publishes(ctx, tmp_path):
    state = with_metrics(world.state(tmp_path, leader=False))
    out = ctx.run(ctx.on.config_changed(), state)
    assert metrics_bag(out) == {}
    out = ctx.run(ctx.on.leader_elected(), dataclasses.replace(out, leader=True))
    assert metrics_bag(out) == METRICS_ENDPOINT_APP_DATA


def test_upgrade_rewrites_a_job_an_older_charm_left(ctx, published):
    stale = with_metrics(published, local_app_data={"scrape_jobs": "[]", "scrape_metadata": "{}"})
    out = ctx.run(ctx.on.upgrade_charm(), stale)
    assert metrics_bag(out) == METRICS_ENDPOINT_APP_DATA


def test_a_model_uuid_prometheus_refuses_blocks_naming_it_and_writes_nothing(ctx, tmp_path):
    # prometheus-k8s raises on a model_uuid that is not a version-4 UUID, failing its hook.
    state = with_metrics(world.state(tmp_path), uuid="00000000-0000-0000-0000-000000000000")
    out = ctx.run(ctx.on.relation_created(state.get_relation(METRICS_ID)), state)
    assert out.unit_status == scenario.BlockedStatus(
        "cannot publish the metrics-endpoint scrape job: model_uuid is not a version-4 UUID, which Prometheus requires"
    )
    assert metrics_bag(out) == {}


def test_other_relations_events_leave_the_job_alone(ctx, published, relation_sets):
    out = world.unrelate(ctx, published, "ingress")
    assert metrics_bag(out) == METRICS_ENDPOINT_APP_DATA
    assert [key for rid, key in relation_sets if rid == METRICS_ID] == []
