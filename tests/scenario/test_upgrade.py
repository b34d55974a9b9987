"""`juju refresh` from an older revision: the stored state it left behind must not break the new code.

Juju keeps the unit's stored state across a charm upgrade, so the new code
starts from whatever the old code wrote. The snapshots below stand for the
shapes an older revision can leave:

- nothing at all (a revision without StoredState);
- only some of today's keys (a revision before the inputs digest and the
  bucket check existed), with a spec hash of an older template;
- today's keys holding other types (None, numbers) and keys the old code used
  that this one does not know;
- a deferred event whose handler no longer exists.

After `upgrade-charm` the charm must set the spec exactly when the rendered
spec differs from the recorded one (waiting for its rollout), reach Active on
the next update-status once Kubernetes runs it, and then be back to no-op hooks.
None of these snapshots holds today's spec_revision, spec_generation or
digest_key.
"""

import dataclasses

import pytest
import scenario

import world

OLD_SPEC_HASH = "0" * 64  # the hash of a spec some older template rendered

SNAPSHOTS = {
    "no stored state": None,
    "empty": {},
    "only spec_hash": {"spec_hash": OLD_SPEC_HASH},
    "older types": {"spec_hash": None, "settled_inputs": 0, "bucket_checked": False},
    "unknown old keys": {
        "spec_hash": OLD_SPEC_HASH,
        "configured": True,
        "db_ready": "yes",
        "pod_spec_version": 2,
        "last_relations": ["db", "object-storage"],
    },
    "settled with an old digest": {"spec_hash": OLD_SPEC_HASH, "settled_inputs": "f" * 64, "bucket_checked": "e" * 64},
}


def with_snapshot(state: scenario.State, content) -> scenario.State:
    if content is None:
        return state
    stored = scenario.StoredState(owner_path="MlflowServerCharm", name="_stored", content=content)
    return dataclasses.replace(state, stored_states={stored})


@pytest.mark.parametrize("snapshot", sorted(SNAPSHOTS))
def test_upgrade_from_an_older_revision_reaches_active_and_sets_the_new_spec(ctx, tmp_path, pod_specs, snapshot):
    state = with_snapshot(world.state(tmp_path), SNAPSHOTS[snapshot])
    out = ctx.run(ctx.on.upgrade_charm(), state)
    assert out.unit_status == world.ROLLOUT
    assert len(pod_specs) == 1, "the new spec differs from the recorded one: set it once"
    out = world.rolled_out(ctx, out)
    assert out.unit_status == scenario.ActiveStatus()
    assert len(pod_specs) == 1
    for event in ("config_changed", "update_status", "update_status"):
        out = ctx.run(getattr(ctx.on, event)(), out)
        assert out.unit_status == scenario.ActiveStatus()
    assert len(pod_specs) == 1, "after the upgrade, no-op hooks are no-ops again"


def test_upgrade_to_the_same_spec_does_not_restart_the_pod(ctx, tmp_path, pod_specs):
    """The old revision recorded the very spec this one renders: upgrade-charm re-checks, sets nothing."""
    current = world.active(ctx, ctx.on.config_changed(), world.state(tmp_path))
    assert current.unit_status == scenario.ActiveStatus()
    assert len(pod_specs) == 1
    out = ctx.run(ctx.on.upgrade_charm(), current)
    assert out.unit_status == scenario.ActiveStatus()
    assert len(pod_specs) == 1


@pytest.mark.parametrize("snapshot", ["only spec_hash", "unknown old keys"])
def test_upgrade_with_a_relation_missing_says_so(ctx, tmp_path, pod_specs, snapshot):
    state = with_snapshot(world.state(tmp_path, endpoints=("db", "object-storage", "ingress")), SNAPSHOTS[snapshot])
    out = ctx.run(ctx.on.upgrade_charm(), state)
    assert out.unit_status.name == "blocked"
    assert "missing relation pod-defaults" in out.unit_status.message
    assert len(pod_specs) == 1


@pytest.mark.parametrize("snapshot", sorted(SNAPSHOTS))
def test_upgrade_of_a_non_leader_unit(ctx, tmp_path, pod_specs, snapshot):
    state = dataclasses.replace(with_snapshot(world.state(tmp_path), SNAPSHOTS[snapshot]), leader=False)
    out = ctx.run(ctx.on.upgrade_charm(), state)
    assert out.unit_status.name == "active"
    assert pod_specs == []


def test_upgrade_with_an_event_deferred_by_the_old_code(ctx, tmp_path, pod_specs):
    # The old code observed config-changed with a `_on_config_changed` method and deferred it.
    deferred = scenario.DeferredEvent(
        handle_path="MlflowServerCharm/on/config_changed[1]", owner="MlflowServerCharm", observer="_on_config_changed"
    )
    state = dataclasses.replace(with_snapshot(world.state(tmp_path), SNAPSHOTS["only spec_hash"]), deferred=[deferred])
    out = ctx.run(ctx.on.upgrade_charm(), state)
    assert out.unit_status == world.ROLLOUT
    assert len(pod_specs) == 1
    assert out.deferred == []  # the orphaned notice is dropped, not re-emitted forever
    out = world.rolled_out(ctx, out)
    assert out.unit_status == scenario.ActiveStatus()
    assert len(pod_specs) == 1
    assert out.deferred == []
