"""Only the leader sets the pod spec and writes app data; others say what they are."""

import dataclasses

import pytest
import scenario
from scenario import ActiveStatus

import world


def test_non_leader_sets_nothing_and_says_it_is_standby(ctx, tmp_path, pod_specs):
    out = ctx.run(ctx.on.config_changed(), world.state(tmp_path, leader=False))
    assert out.unit_status == world.STANDBY
    assert pod_specs == []
    for endpoint in world.ALL:
        assert world.bag(out, endpoint) == {}


def test_becoming_leader_takes_over(ctx, tmp_path, pod_specs):
    out = ctx.run(ctx.on.config_changed(), world.state(tmp_path, leader=False))
    out = world.active(ctx, ctx.on.leader_elected(), dataclasses.replace(out, leader=True))
    assert out.unit_status == ActiveStatus()
    assert len(pod_specs) == 1
    assert "pod-defaults" in world.bag(out, "pod-defaults")


def test_upgrade_charm_re_renders(ctx, tmp_path, pod_specs, kubernetes):
    out = world.active(ctx, ctx.on.config_changed(), world.state(tmp_path))
    asked = len(kubernetes.requests)
    out = ctx.run(ctx.on.upgrade_charm(), out)
    assert out.unit_status == ActiveStatus()
    assert len(kubernetes.requests) == asked + 1, "upgrade-charm is never a no-op"
    assert len(pod_specs) == 1, "same spec after the upgrade: no restart"


@pytest.mark.parametrize("content", ["", "username: x\n", "registrypath: [\n", "registrypath: ''\n"])
def test_unreadable_image_resource_blocks_with_the_command(ctx, tmp_path, pod_specs, content):
    # Scenario cannot emulate a resource that was never attached (Juju's
    # resource-get error); an empty or broken resource file takes that path.
    path = tmp_path / "broken-image.yaml"
    path.write_text(content)
    state = dataclasses.replace(world.state(tmp_path), resources={scenario.Resource(name="oci-image", path=path)})
    out = ctx.run(ctx.on.config_changed(), state)
    assert out.unit_status.name == "blocked"
    assert "juju attach-resource" in out.unit_status.message and "oci-image" in out.unit_status.message
    assert pod_specs == []


def test_losing_and_regaining_leadership_reports_for_the_leader_again(ctx, tmp_path, pod_specs):
    out = world.active(ctx, ctx.on.config_changed(), world.state(tmp_path))
    assert out.unit_status == ActiveStatus()
    out = ctx.run(ctx.on.update_status(), dataclasses.replace(out, leader=False))
    assert out.unit_status.message.startswith("standby")
    out = world.active(ctx, ctx.on.leader_elected(), dataclasses.replace(out, leader=True))
    assert out.unit_status == ActiveStatus(), "a leader must not keep the standby message"
    # Another leader may have set another spec meanwhile: the spec is set again.
    assert len(pod_specs) == 2 and pod_specs[1]["containers"] == pod_specs[0]["containers"]
