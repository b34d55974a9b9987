"""Issue 21 part 3: the bucket the proxy serves survives a change of leader.

GIVEN a deployment whose server proxied artifacts to a bucket, WHEN another
unit becomes leader (in the middle of a bucket change, after an upgrade from
a revision that kept the bucket in unit state, or before the peer relation
was listed), THEN the new leader proxies the same bucket and refuses the same
bucket change, because the bucket lives in the `replicas` peer relation's
application bag (src/proxied_bucket.py), not in the old leader's state.
"""

import dataclasses

import pytest
import scenario
from scenario import ActionFailed, ActiveStatus

import world
from charm import MlflowServerCharm

PEER_ID = 99
KEY = "proxied-bucket"


def peers(app_data=None, other_unit=1):
    return scenario.PeerRelation(
        endpoint="replicas",
        interface="mlflow_server_replicas",
        id=PEER_ID,
        local_app_data=dict(app_data or {}),
        peers_data={other_unit: {}},
    )


def with_peers(state, relation):
    return dataclasses.replace(state, relations={*(r for r in state.relations if r.id != PEER_ID), relation})


def configure(ctx, state, **options):
    """`juju config`, then the update-status that sees the rolled-out pod."""
    return world.active(ctx, ctx.on.config_changed(), dataclasses.replace(state, config={**state.config, **options}))


def stored(state):
    return state.get_stored_state("_stored", owner_path="MlflowServerCharm").content


def proxy_target(spec):
    command = next(c for c in spec["containers"] if c["name"] == "mlflow-server")["command"]
    return command[command.index("--artifacts-destination") + 1] if "--artifacts-destination" in command else None


def handed_over(tmp_path, old_leader_out, stored_content=None):
    """What unit 1 sees once it leads: the same config and relations, the app
    bag the old leader wrote, and its own stored state (none, or `stored_content`)."""
    bag = old_leader_out.get_relation(PEER_ID).local_app_data
    state = world.state(tmp_path, config=dict(old_leader_out.config))
    state = with_peers(state, peers(bag, other_unit=0))
    if stored_content is not None:
        content = scenario.StoredState(owner_path="MlflowServerCharm", name="_stored", content=stored_content)
        state = dataclasses.replace(state, stored_states={content})
    return state


@pytest.fixture
def unit1():
    return scenario.Context(MlflowServerCharm, unit_id=1)


@pytest.fixture
def proxying(ctx, tmp_path, pod_specs):
    """Unit 0 leads, with the peer relation, and its server proxies bucket 'mlflow'."""
    out = world.active(ctx, ctx.on.config_changed(), with_peers(world.state(tmp_path), peers()))
    out = configure(ctx, out, serve_artifacts=True)
    assert out.unit_status == ActiveStatus()
    assert proxy_target(pod_specs[-1]) == "s3://mlflow/"
    assert out.get_relation(PEER_ID).local_app_data == {KEY: "mlflow"}
    return out


def test_a_new_leader_refuses_the_bucket_change_the_old_one_refused(ctx, unit1, tmp_path, proxying, pod_specs):
    moved = configure(ctx, proxying, default_artifact_root="models")
    assert moved.unit_status.name == "blocked"
    specs = len(pod_specs)

    out = unit1.run(unit1.on.leader_elected(), handed_over(tmp_path, moved))
    assert out.unit_status == moved.unit_status, "the new leader knows the bucket runs were proxied to"
    assert len(pod_specs) == specs, "the spec in force keeps serving the proxied runs"

    confirmed = unit1.run(unit1.on.action("confirm-artifacts-copied"), out)
    assert unit1.action_results == {"previous-bucket": "mlflow", "bucket": "models"}
    assert proxy_target(pod_specs[-1]) == "s3://models/"
    assert confirmed.get_relation(PEER_ID).local_app_data == {KEY: "models"}


def test_a_new_leader_keeps_proxying_after_serve_artifacts_was_turned_off(ctx, unit1, tmp_path, proxying, pod_specs):
    off = configure(ctx, proxying, serve_artifacts=False, default_artifact_root="models")
    assert off.unit_status == ActiveStatus() and proxy_target(pod_specs[-1]) == "s3://mlflow/"

    out = world.active(unit1, unit1.on.leader_elected(), handed_over(tmp_path, off))
    assert out.unit_status == ActiveStatus()
    assert proxy_target(pod_specs[-1]) == "s3://mlflow/", "runs logged through the server stay readable"


def test_the_old_leader_hands_over_in_the_middle_of_a_confirmed_bucket_change(
    ctx, unit1, tmp_path, proxying, pod_specs
):
    """Confirmed on unit 0, whose new spec has not rolled out yet, when unit 1 takes over."""
    moved = configure(ctx, proxying, default_artifact_root="models")
    confirmed = ctx.run(ctx.on.action("confirm-artifacts-copied"), moved)
    assert confirmed.unit_status == world.ROLLOUT

    out = world.active(unit1, unit1.on.leader_elected(), handed_over(tmp_path, confirmed))
    assert out.unit_status == ActiveStatus(), "the confirmation holds for the new leader"
    assert proxy_target(pod_specs[-1]) == "s3://models/"


def test_a_non_leader_reads_nothing_and_writes_nothing(unit1, tmp_path, proxying, pod_specs):
    state = dataclasses.replace(handed_over(tmp_path, proxying), leader=False)
    specs = len(pod_specs)
    out = unit1.run(unit1.on.config_changed(), state)
    assert out.unit_status == world.STANDBY
    assert out.get_relation(PEER_ID).local_app_data == {KEY: "mlflow"}
    assert len(pod_specs) == specs
    with pytest.raises(ActionFailed, match="leader"):
        unit1.run(unit1.on.action("confirm-artifacts-copied"), state)


# --- an upgrade from a revision that kept the bucket in unit state ---------------


def old_revision_state(tmp_path, config, leader=True, app_data=None):
    """The leader's stored state of an earlier revision, which remembered the bucket itself."""
    state = with_peers(world.state(tmp_path, config=config, leader=leader), peers(app_data))
    content = scenario.StoredState(owner_path="MlflowServerCharm", name="_stored", content={"proxied_bucket": "mlflow"})
    return dataclasses.replace(state, stored_states={content})


def test_the_upgrade_moves_the_remembered_bucket_into_the_peer_bag(ctx, unit1, tmp_path, pod_specs):
    moving = {"serve_artifacts": True, "default_artifact_root": "models"}
    out = ctx.run(ctx.on.upgrade_charm(), old_revision_state(tmp_path, moving))
    assert out.unit_status.name == "blocked" and "'mlflow'" in out.unit_status.message
    assert out.get_relation(PEER_ID).local_app_data == {KEY: "mlflow"}
    assert stored(out)["proxied_bucket"] == "", "one home: the bag"
    assert pod_specs == []

    after = unit1.run(unit1.on.leader_elected(), handed_over(tmp_path, out))
    assert after.unit_status == out.unit_status


def test_a_non_leader_keeps_its_remembered_bucket_until_it_leads(ctx, tmp_path, pod_specs):
    config = {"serve_artifacts": False}
    out = ctx.run(ctx.on.upgrade_charm(), old_revision_state(tmp_path, config, leader=False))
    assert out.unit_status == world.STANDBY
    assert out.get_relation(PEER_ID).local_app_data == {}, "only the leader writes the app bag"
    assert stored(out)["proxied_bucket"] == "mlflow"

    out = world.active(ctx, ctx.on.leader_elected(), dataclasses.replace(out, leader=True))
    assert out.unit_status == ActiveStatus()
    assert proxy_target(pod_specs[-1]) == "s3://mlflow/"
    assert out.get_relation(PEER_ID).local_app_data == {KEY: "mlflow"}
    assert stored(out)["proxied_bucket"] == ""


def test_the_peer_bag_outranks_a_stale_bucket_in_unit_state(ctx, tmp_path, pod_specs):
    """A unit that led under the old revision, before a later confirm moved the proxy."""
    state = old_revision_state(tmp_path, {"serve_artifacts": True, "default_artifact_root": "models"})
    state = with_peers(state, peers({KEY: "models"}))
    out = world.active(ctx, ctx.on.leader_elected(), state)
    assert out.unit_status == ActiveStatus()
    assert proxy_target(pod_specs[-1]) == "s3://models/"
    assert out.get_relation(PEER_ID).local_app_data == {KEY: "models"}
    assert stored(out)["proxied_bucket"] == ""


# --- before Juju lists the peer relation -------------------------------------------


def test_without_the_peer_relation_the_unit_remembers_until_it_appears(ctx, tmp_path, pod_specs):
    out = configure(ctx, world.state(tmp_path), serve_artifacts=True)
    assert out.unit_status == ActiveStatus()
    assert stored(out)["proxied_bucket"] == "mlflow"

    out = ctx.run(ctx.on.update_status(), with_peers(out, peers()))
    assert out.unit_status == ActiveStatus()
    assert out.get_relation(PEER_ID).local_app_data == {KEY: "mlflow"}, "a settled hook moves it too"
    assert stored(out)["proxied_bucket"] == ""


def test_confirming_under_a_bad_config_fails_and_moves_nothing(ctx, proxying, pod_specs):
    specs = len(pod_specs)
    bad = dataclasses.replace(proxying, config={**proxying.config, "default_artifact_root": "s3://models"})
    with pytest.raises(ActionFailed, match=r"^fix the config first: .*default_artifact_root"):
        ctx.run(ctx.on.action("confirm-artifacts-copied"), bad)
    assert len(pod_specs) == specs
