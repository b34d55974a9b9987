"""The db relation is plain unit-bag data (no SDI): parse it from stand-in relations."""

from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from contracts import MARIADB_UNIT_DATA
from problems import Blocked, Waiting
from relation_data import Database, read_database, require_relations


@dataclass(frozen=True)
class Unit:
    name: str


def relation(*bags):
    units = [Unit(f"mlflow-db/{i}") for i in range(len(bags))]
    data = dict(zip(units, bags))
    return SimpleNamespace(name="db", app=SimpleNamespace(name="mlflow-db"), units=set(units), data=data)


def parse(relation):
    return read_database(None, [relation]).value()


def test_contract_data_parses_and_drops_the_root_password():
    db = parse(relation(dict(MARIADB_UNIT_DATA)))
    assert db == Database(host="10.152.183.27", port=3306, name="database", user="mysql", password="password")
    assert "root" not in repr(db)


def test_no_units_yet_waits_naming_every_field():
    with pytest.raises(Waiting) as raised:
        parse(relation())
    assert "mlflow-db" in raised.value.message
    for field in ("database", "host", "port", "user", "password"):
        assert field in raised.value.message


def test_partial_data_waits_naming_what_is_missing():
    bag = {k: v for k, v in MARIADB_UNIT_DATA.items() if k not in ("password", "host")}
    with pytest.raises(Waiting, match=r"missing: host, password\)"):
        parse(relation(bag))


def test_the_first_complete_unit_wins():
    partial = {"database": "database"}
    db = parse(relation(partial, dict(MARIADB_UNIT_DATA, host="10.0.0.9")))
    assert db.host == "10.0.0.9"


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("port", "33o6", "port"),
        ("port", "0", "port"),
        ("port", "70000", "port"),
        ("host", "evil/host@x", "host"),
        ("host", "a b", "host"),
        ("database", "db;drop", "database name"),
    ],
)
def test_bad_values_block_naming_the_field(field, value, words):
    with pytest.raises(Blocked) as raised:
        parse(relation(dict(MARIADB_UNIT_DATA, **{field: value})))
    assert words in raised.value.message and value not in raised.value.message


@pytest.mark.parametrize("host", ["fd00::1", "mariadb.kubeflow.svc.cluster.local", "10.1.2.3"])
def test_hosts_as_names_and_addresses(host):
    assert parse(relation(dict(MARIADB_UNIT_DATA, host=host))).host == host


def test_missing_relations_name_each_relate_command():
    with pytest.raises(Blocked) as raised:
        require_relations(["db", "object-storage"], "mlflow-server")
    assert "`juju relate mlflow-db mlflow-server`" in raised.value.message
    assert "`juju relate minio mlflow-server`" in raised.value.message
    require_relations([], "mlflow-server")  # nothing missing: nothing raised
