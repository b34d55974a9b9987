"""Build Scenario states of the tutorial's deployment from CONTRACTS.md data."""

import dataclasses
from pathlib import Path
from typing import Dict, Iterable, Optional

import scenario

from contracts import (
    ADMISSION_WEBHOOK_APP_DATA,
    IMAGE,
    ISTIO_PILOT_APP_DATA,
    MARIADB_UNIT_DATA,
    MINIO_APP_DATA,
    MODEL,
)

RELATION_IDS = {"db": 1, "object-storage": 2, "ingress": 3, "pod-defaults": 4}
ALL = ("object-storage", "ingress", "db", "pod-defaults")  # the tutorial's order


def relation(endpoint: str, **changes) -> scenario.Relation:
    """The endpoint's relation with its peer's data as CONTRACTS.md shows it."""
    base = {
        "db": dict(interface="mysql", remote_app_name="mlflow-db", remote_units_data={0: dict(MARIADB_UNIT_DATA)}),
        "object-storage": dict(
            interface="object-storage", remote_app_name="minio", remote_app_data=dict(MINIO_APP_DATA)
        ),
        "ingress": dict(interface="ingress", remote_app_name="istio-pilot", remote_app_data=dict(ISTIO_PILOT_APP_DATA)),
        "pod-defaults": dict(
            interface="pod-defaults",
            remote_app_name="admission-webhook",
            remote_app_data=dict(ADMISSION_WEBHOOK_APP_DATA),
        ),
    }[endpoint]
    base.update(changes)
    return scenario.Relation(endpoint=endpoint, id=RELATION_IDS[endpoint], **base)


def image_resource(tmp_path: Path) -> scenario.Resource:
    path = tmp_path / "oci-image.yaml"
    path.write_text(f"registrypath: {IMAGE}\nusername: ''\npassword: ''\n")
    return scenario.Resource(name="oci-image", path=path)


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


def with_relation(state: scenario.State, rel: scenario.Relation) -> scenario.State:
    others = {r for r in state.relations if r.endpoint != rel.endpoint}
    return dataclasses.replace(state, relations=others | {rel})


def without(state: scenario.State, endpoint: str) -> scenario.State:
    return dataclasses.replace(state, relations={r for r in state.relations if r.endpoint != endpoint})


def bag(state: scenario.State, endpoint: str) -> Dict[str, str]:
    """Our app bag on the endpoint's relation in an output state."""
    return dict(state.get_relation(RELATION_IDS[endpoint]).local_app_data)
