"""SDI negotiation with minio and istio-pilot: unlisted and incompatible versions."""

import pytest
from scenario import BlockedStatus, WaitingStatus

import world
from contracts import INGRESS_V1_DATA


def test_minio_without_versions_waits(ctx, tmp_path, pod_specs):
    state = world.state(tmp_path, object_storage={"remote_app_data": {}})
    out = ctx.run(ctx.on.config_changed(), state)
    assert isinstance(out.unit_status, WaitingStatus)
    assert "minio" in out.unit_status.message and "schema versions" in out.unit_status.message
    assert world.bag(out, "object-storage") == {"_supported_versions": "- v1\n"}, "we list ours first"
    assert pod_specs == []


@pytest.mark.parametrize("versions", ["- v2\n", "- v0\n- v3\n"])
def test_minio_with_no_common_version_blocks(ctx, tmp_path, versions):
    data = {"_supported_versions": versions, "data": "{}"}
    out = ctx.run(ctx.on.config_changed(), world.state(tmp_path, object_storage={"remote_app_data": data}))
    assert isinstance(out.unit_status, BlockedStatus)
    assert "no object-storage schema version" in out.unit_status.message


@pytest.mark.parametrize("versions", ["not: [a, list", "v1", "- 1.5\n", "- [v1]\n", "42"])
def test_unreadable_version_lists_block(ctx, tmp_path, versions):
    data = {"_supported_versions": versions}
    out = ctx.run(ctx.on.config_changed(), world.state(tmp_path, ingress={"remote_app_data": data}))
    assert isinstance(out.unit_status, BlockedStatus)
    assert "istio-pilot" in out.unit_status.message and "ingress" in out.unit_status.message


def test_istio_pilot_speaking_only_v1_gets_the_v1_request(ctx, tmp_path):
    state = world.state(tmp_path, ingress={"remote_app_data": {"_supported_versions": "- v1\n"}})
    out = ctx.run(ctx.on.config_changed(), state)
    assert world.bag(out, "ingress")["data"] == INGRESS_V1_DATA


def test_istio_pilot_listing_versions_in_any_order_gets_v2(ctx, tmp_path):
    state = world.state(tmp_path, ingress={"remote_app_data": {"_supported_versions": "- v2\n- v1\n"}})
    out = ctx.run(ctx.on.config_changed(), state)
    assert "namespace: kubeflow\n" in world.bag(out, "ingress")["data"]


def test_istio_pilot_without_versions_waits_but_the_server_runs(ctx, tmp_path, pod_specs):
    out = ctx.run(ctx.on.config_changed(), world.state(tmp_path, ingress={"remote_app_data": {}}))
    assert isinstance(out.unit_status, WaitingStatus) and "istio-pilot" in out.unit_status.message
    assert "data" not in world.bag(out, "ingress")
    assert len(pod_specs) == 1
