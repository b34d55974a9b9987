"""Build Scenario states of the tutorial's deployment from CONTRACTS.md data."""

import dataclasses
from pathlib import Path
from typing import Dict, Iterable, Optional

import scenario

import charm
from contracts import IMAGE, MODEL, PEERS, RELATION_IDS

DEFAULTS = {
    "mlflow_port": 5000,
    "default_artifact_root": "mlflow",
    "workers": 4,
    "mlflow_nodeport": 31380,
}
ALL = tuple(PEERS)  # the tutorial's order
# The statuses tests expect, from the charm's own constants.
ROLLOUT = scenario.WaitingStatus(charm.ROLLOUT)
STANDBY = scenario.ActiveStatus(charm.STANDBY)


def relation(endpoint: str, **changes) -> scenario.Relation:
    """The endpoint's relation with its peer's data as CONTRACTS.md shows it."""
    peer = PEERS[endpoint]
    base = {"interface": peer.interface, "remote_app_name": peer.remote_app}
    if peer.unit_data:
        base["remote_units_data"] = {0: dict(peer.unit_data)}
    else:
        base["remote_app_data"] = dict(peer.app_data)
    base.update(changes)
    return scenario.Relation(endpoint=endpoint, id=RELATION_IDS[endpoint], **base)


def image_resource(tmp_path: Path, image: str = IMAGE) -> scenario.Resource:
    path = tmp_path / ("oci-image.yaml" if image == IMAGE else f"oci-image-{abs(hash(image))}.yaml")
    path.write_text(f"registrypath: {image}\nusername: ''\npassword: ''\n")
    return scenario.Resource(name="oci-image", path=path)


def with_image(state: scenario.State, tmp_path: Path, image: str) -> scenario.State:
    """`juju attach-resource` of another image."""
    return dataclasses.replace(state, resources={image_resource(tmp_path, image)})


def state(
    tmp_path: Path,
    endpoints: Iterable[str] = ALL,
    leader: bool = True,
    config: Optional[Dict] = None,
    **relation_changes,
) -> scenario.State:
    return scenario.State(
        leader=leader,
        model=scenario.Model(name=MODEL),
        config=config or {},
        resources={image_resource(tmp_path)},
        relations={relation(ep, **relation_changes.get(ep.replace("-", "_"), {})) for ep in endpoints},
    )


NONCE = "0123456789ab"


def with_nonce(state: scenario.State, nonce: str = NONCE) -> scenario.State:
    """The state with a known spec-revision nonce: equal inputs and equal stored
    state must give byte-identical specs (a fresh state draws a random one)."""
    stored = scenario.StoredState(owner_path="MlflowServerCharm", name="_stored", content={"spec_nonce": nonce})
    return dataclasses.replace(state, stored_states={stored})


def with_relation(state: scenario.State, rel: scenario.Relation) -> scenario.State:
    others = {r for r in state.relations if r.endpoint != rel.endpoint}
    return dataclasses.replace(state, relations=others | {rel})


def without(state: scenario.State, endpoint: str) -> scenario.State:
    return dataclasses.replace(state, relations={r for r in state.relations if r.endpoint != endpoint})


def bag(state: scenario.State, endpoint: str) -> Dict[str, str]:
    """Our app bag on the endpoint's relation in an output state."""
    return dict(state.get_relation(RELATION_IDS[endpoint]).local_app_data)


def update_relation(state: scenario.State, endpoint: str, **changes) -> scenario.State:
    """Change a relation in place, keeping what the charm wrote to it."""
    current = state.get_relation(RELATION_IDS[endpoint])
    return with_relation(state, dataclasses.replace(current, **changes))


def relate(ctx: scenario.Context, state: scenario.State, endpoint: str) -> scenario.State:
    """`juju relate`: created and joined with empty bags, then the peer's data arrives."""
    empty = relation(endpoint, remote_app_data={}, remote_units_data={0: {}})
    state = with_relation(state, empty)
    state = ctx.run(ctx.on.relation_created(empty), state)
    state = ctx.run(ctx.on.relation_joined(state.get_relation(empty.id), remote_unit=0), state)
    full = relation(endpoint)
    state = update_relation(
        state, endpoint, remote_app_data=full.remote_app_data, remote_units_data=full.remote_units_data
    )
    return ctx.run(ctx.on.relation_changed(state.get_relation(full.id)), state)


def unrelate(ctx: scenario.Context, state: scenario.State, endpoint: str) -> scenario.State:
    """`juju remove-relation`: relation-broken, after which the relation is gone."""
    state = ctx.run(ctx.on.relation_broken(state.get_relation(RELATION_IDS[endpoint])), state)
    return without(state, endpoint)


def deployed(ctx: scenario.Context, tmp_path: Path, leader: bool = True, config: Optional[Dict] = None):
    """`juju deploy mlflow-server`: install, leadership, config-changed, start."""
    state = state_without_relations(tmp_path, leader=leader, config=config)
    for event in (ctx.on.install(), ctx.on.leader_elected(), ctx.on.config_changed(), ctx.on.start()):
        if event.name == "leader_elected" and not leader:
            continue
        state = ctx.run(event, state)
    return state


def state_without_relations(tmp_path: Path, leader: bool = True, config: Optional[Dict] = None) -> scenario.State:
    return state(tmp_path, endpoints=(), leader=leader, config=config)


def settled(ctx: scenario.Context, tmp_path: Path, config: Optional[Dict] = None) -> scenario.State:
    """The tutorial's end state: deployed and related to all four peers."""
    state = deployed(ctx, tmp_path, config=config)
    for endpoint in ALL:
        state = relate(ctx, state, endpoint)
    return rolled_out(ctx, state)


def rolled_out(ctx: scenario.Context, state: scenario.State) -> scenario.State:
    """The next update-status, after Kubernetes has rolled out the spec the charm set."""
    return ctx.run(ctx.on.update_status(), state)


def active(ctx: scenario.Context, event, state: scenario.State) -> scenario.State:
    """Run `event`, then update-status as Juju would later: where a test expects Active."""
    return rolled_out(ctx, ctx.run(event, state))
