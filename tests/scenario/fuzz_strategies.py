"""Hypothesis strategies for everything the charm reads from Juju, and the checks every outcome must pass.

Relation data is strings only in Juju, so bags are str -> str; what varies is
the shape inside those strings: missing keys, wrong YAML types, bad YAML or
JSON, unknown or missing SDI versions, empty, huge and unicode values. Valid
values are always among the choices, so many cases get deep into the charm
(a rendered spec, a real S3 call to the loopback fake) rather than stopping at
the first parse error.
"""

import os
import re
import string

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase

from problems import MAX_MESSAGE_LENGTH

# Two profiles. "derandomized", the default (`make test`, CI): the same
# examples on every run, whatever the seed, the clock or an earlier run left
# in .hypothesis/ (no example database). "randomized" (`make fuzz`,
# FUZZ_RANDOM=1): new examples every run, a failure kept in .hypothesis/ and
# replayed first next time, and printed with the blob that reproduces it.
# Loaded here, before FUZZ below is made from it; hypothesis' own "ci"
# profile (loaded when CI is set) is not used.
_DEFAULT = settings.get_profile("default")  # not "ci", whatever CI says
settings.register_profile("derandomized", _DEFAULT, derandomize=True, database=None, print_blob=False)
settings.register_profile(
    "randomized",
    _DEFAULT,
    derandomize=False,
    database=DirectoryBasedExampleDatabase(".hypothesis/examples"),
    print_blob=True,
)
settings.load_profile("randomized" if os.environ.get("FUZZ_RANDOM", "0") not in ("", "0") else "derandomized")

# No deadline and no timing health check: a case with a real S3 call takes
# tens of ms, and a loaded machine must not change what a run does.
FUZZ = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the fixtures are per-process fakes, reset by the charm's own logic
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


def examples(n: int, least: int = 1) -> settings:
    """FUZZ with n examples times FUZZ_SCALE, and at least `least`: `make test` runs 0.2
    (tox.ini), `make fuzz` 5, unset is 1."""
    return settings(FUZZ, max_examples=max(least, int(n * float(os.environ.get("FUZZ_SCALE", "1")))))


HUGE = "x" * 100_000
ODD_STRINGS = [
    "",
    " ",
    "\t\n",
    "null",
    "~",
    "[]",
    "{}",
    "- a\n- b\n",
    "a: b",
    ":",
    "'",
    '"',
    "{{",
    "&anchor x",
    "*alias",
    "!!python/object:os.system ls",
    "a: &a [x, x, x]\nb: &b [*a, *a, *a]\naccess-key: *b\n",
    "%YAML 9.9\n---\n",
    "\x00",
    "\u202eevil",
    "ünïcødé ✓ 日本",
    "9" * 400,
    "1e400",
    "0x10",
    "-1",
    "²",
    "٣٣٠٦",
    HUGE,
]

odd_text = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=40))

# Secret values: distinctive (so the leak check can search for them verbatim)
# or odd (empty, unicode, YAML-looking, huge).
distinctive_secret = st.builds(
    lambda a, b: f"Zq{a}-{b}",
    st.text(string.ascii_letters + string.digits, min_size=6, max_size=12),
    st.text(string.ascii_letters + string.digits + "@:/%#?&=+ !'\"\\", min_size=0, max_size=12),
)
secret_value = st.one_of(distinctive_secret, distinctive_secret, st.sampled_from(["", " ", "ünï ✓ 秘密", HUGE]))

yaml_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    odd_text,
)
yaml_value = st.one_of(
    yaml_scalar, st.lists(yaml_scalar, max_size=3), st.dictionaries(odd_text, yaml_scalar, max_size=3)
)

MISSING = object()


def mostly(valid, *wrong, valid_in_10: int = 6):
    """`valid` in valid_in_10 of 10 draws, else one of the wrong strategies."""
    wrong_choice = st.one_of(*wrong) if wrong else st.nothing()
    return st.integers(0, 9).flatmap(lambda i: valid if i < valid_in_10 else wrong_choice)


def mutated(valid_fields: dict, wrong_fields: dict, max_mutations: int = 3):
    """A valid mapping with 0..max_mutations fields replaced by a wrong value or removed.

    Mutating a few fields of good data, rather than drawing every field at
    random, makes most cases reach deep into the charm while each bad field
    still gets tried alone and in pairs.
    """

    @st.composite
    def build(draw):
        fields = {name: draw(valid) for name, valid in valid_fields.items()}
        for name in draw(st.sets(st.sampled_from(sorted(wrong_fields)), max_size=max_mutations)):
            fields[name] = draw(mostly(wrong_fields[name], yaml_value, st.just(MISSING), valid_in_10=7))
        if draw(st.integers(0, 9)) == 0:
            fields.update(draw(st.dictionaries(odd_text, yaml_value, max_size=2)))
        return fields

    return build()


def _dump(mapping) -> str:
    return yaml.safe_dump({k: v for k, v in mapping.items() if v is not MISSING}, allow_unicode=True)


def _bag(**fields) -> dict:
    return {k: v for k, v in fields.items() if v is not MISSING}


def sdi_versions(valid):
    return mostly(
        st.sampled_from(valid),
        st.sampled_from(["- v2\n", "- v3\n", "[]", "", "v1", "{a: b}", "- 1\n", "- [v1]\n", "- null\n", "[v1"]),
        st.just("- v1\n" * 500),
        odd_text,
        st.just(MISSING),
        valid_in_10=7,
    )


# --- object-storage (minio, SDI v1) -------------------------------------------

# Hand-picked wrong values per field: the fuzz draws from them, and
# test_every_single_wrong_field tries each one alone in otherwise valid data.
OBJECT_STORAGE_WRONG = {
    "access-key": ["", " ", 0, None, ["minio"]],
    "secret-key": ["", " ", 0, None, {"a": 1}, "ünï ✓ 秘密", HUGE],
    "service": ["MINIO", "-minio", "minio-", "a" * 64, "10", "1.2", "minio.kubeflow", "mínio", "", 7, None],
    "port": [0, -1, 65535, 65536, 9000.0, 9000.5, "9000", True, None, 10**400, -(10**400), float("inf"), float("nan")],
    "namespace": ["Kubeflow", "kube_flow", "", "a" * 64, 7, [], "kubeflow\n"],
    "secure": [True, "false", 0, None, "yes"],
}

object_storage_fields = mutated(
    {
        "access-key": st.sampled_from(["minio", "AKIA-fuzz"]),
        "secret-key": distinctive_secret,
        "service": st.just("minio"),  # minio and minio.kubeflow resolve to the S3 fake; port 9000 reaches it
        "port": st.just(9000),
        "namespace": st.sampled_from(["kubeflow", None, MISSING]),
        "secure": st.just(False),
    },
    {
        "access-key": st.sampled_from(OBJECT_STORAGE_WRONG["access-key"]),
        "secret-key": st.one_of(st.sampled_from(OBJECT_STORAGE_WRONG["secret-key"]), secret_value),
        "service": st.sampled_from(OBJECT_STORAGE_WRONG["service"]),
        "port": st.one_of(
            st.sampled_from(OBJECT_STORAGE_WRONG["port"]),
            st.integers(-(2**70), 2**70),
            st.integers(10**300, 10**400),
            st.floats(allow_nan=True, allow_infinity=True),
        ),
        "namespace": st.sampled_from(OBJECT_STORAGE_WRONG["namespace"]),
        "secure": st.sampled_from(OBJECT_STORAGE_WRONG["secure"]),
    },
)


@st.composite
def object_storage_data(draw) -> str:
    kind = draw(st.integers(0, 9))
    if kind == 7:
        return draw(odd_text)
    if kind == 8:
        return yaml.safe_dump(draw(st.one_of(yaml_scalar, st.lists(yaml_value, max_size=3))), allow_unicode=True)
    fields = draw(object_storage_fields)
    if kind == 9:
        import json

        return json.dumps({k: v for k, v in fields.items() if v is not MISSING}, default=str)
    return _dump(fields)


object_storage_bag = st.builds(
    lambda v, d, extra: {**extra, **_bag(_supported_versions=v, data=d)},
    sdi_versions(["- v1\n"]),
    mostly(object_storage_data(), st.just(MISSING), valid_in_10=9),
    mostly(st.just({}), st.dictionaries(odd_text, odd_text, max_size=2), valid_in_10=8),
)

# --- db (mariadb unit bags, strings) -----------------------------------------

DB_WRONG = {
    "database": ["", " ", "bad name", "a" * 65, "db;drop", "dätabase", "db\n"],
    "host": ["", " ", "bad host!", "[::1]", "-x", "a" * 300, "10.0.0.999", "fe80::1%eth0", "h\n", "ħost"],
    "port": ["", " ", "0", "65536", "-1", "3306.0", " 3306", "3306\n", "abc", "²", "٣٣٠٦", "9" * 400, "0x10", "1e3"],
    "user": ["", " ", "ü", "u\n", HUGE],
    "password": ["", " ", "ünï ✓ 秘密", HUGE],
    "root_password": ["", HUGE],
}

db_unit_bag = mutated(
    {
        "database": st.sampled_from(["database", "mlflow", "a$b-c_d"]),
        "host": st.sampled_from(["10.152.183.27", "::1", "mariadb", "mlflow-db.kubeflow.svc.cluster.local"]),
        "port": st.just("3306"),
        "user": st.sampled_from(["mysql", "u@s:e/r%", "ü"]),
        "password": distinctive_secret,
        "root_password": distinctive_secret,
    },
    {
        "database": st.one_of(st.sampled_from(DB_WRONG["database"]), odd_text),
        "host": st.one_of(st.sampled_from(DB_WRONG["host"]), odd_text),
        "port": st.one_of(st.sampled_from(DB_WRONG["port"]), st.integers(-5, 70000).map(str), odd_text),
        "user": st.one_of(st.sampled_from(DB_WRONG["user"]), odd_text),
        "password": secret_value,
        "root_password": secret_value,
    },
).map(lambda fields: {k: v if isinstance(v, str) else yaml.safe_dump(v).strip() for k, v in _bag(**fields).items()})

db_units = mostly(
    st.builds(lambda bag: {0: bag}, db_unit_bag),
    st.just({}),
    st.dictionaries(st.integers(0, 3), db_unit_bag, max_size=3),
    valid_in_10=7,
)

# --- ingress (istio-pilot, SDI) and pod-defaults (admission-webhook) --------

ingress_bag = st.builds(
    lambda v, d, extra: {**extra, **_bag(_supported_versions=v, data=d)},
    sdi_versions(["- v1\n- v2\n", "- v2\n- v1\n", "- v1\n", "- v2\n"]),
    mostly(st.just(MISSING), odd_text, st.dictionaries(odd_text, yaml_value, max_size=3).map(_dump)),
    mostly(st.just({}), st.dictionaries(odd_text, odd_text, max_size=2), valid_in_10=8),
)
pod_defaults_bag = mostly(
    st.just({}),
    st.dictionaries(
        st.one_of(st.sampled_from(["pod-defaults", "data", "_supported_versions"]), odd_text), odd_text, max_size=3
    ),
    valid_in_10=3,
)

# --- config ------------------------------------------------------------------

CONFIG_WRONG = {
    "mlflow_port": [0, 1023, 65536, -1, 2**63 - 1],
    "default_artifact_root": [
        "",
        "mlflow\n",
        "s3://mlflow",
        "ML",
        "ab",
        "a" * 64,
        "xn--x",
        "x-s3alias",
        "10.0.0.1",
        "a..b",
    ],
    "workers": [0, 65, -(2**63)],
    "mlflow_nodeport": [29999, 32768, 0],
    "allowed_hosts": ["a b", "ho\nst,x", "ħost", "x" * 300, "*,a b", "a/b"],
    "cors_allowed_origins": ["ftp://x", "http://", "http://a b", "http://a\nb", "x.example.com"],
}
config_int = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-2, 70000))
config_text = st.one_of(
    st.sampled_from(CONFIG_WRONG["default_artifact_root"] + CONFIG_WRONG["allowed_hosts"]),
    st.sampled_from(["mlflow", "*", "", " , ,", "a,b", "s3://mlflow", "ML", "ab", "a" * 64, "xn--bucket", "10.0.0.1"]),
    st.sampled_from(["http://10.64.140.43.nip.io", "http://a,https://b", "ftp://x", "host:80,*", "a b", "x://u:p@h"]),
    odd_text,
)
CONFIG_VALUES = {
    "mlflow_port": st.one_of(st.integers(1024, 65535), config_int),
    "default_artifact_root": st.one_of(st.sampled_from(["mlflow", "my-bucket.v2", "abc"]), config_text),
    "create_default_artifact_root_if_missing": st.booleans(),
    "serve_artifacts": st.booleans(),
    "workers": st.one_of(st.integers(1, 64), config_int),
    "enable_mlflow_nodeport": st.booleans(),
    "mlflow_nodeport": st.one_of(st.integers(30000, 32767), config_int),
    "allowed_hosts": config_text,
    "cors_allowed_origins": config_text,
}


@st.composite
def config(draw):
    """Defaults with 0..4 options set, each to a plausible or an out-of-range value."""
    names = draw(st.sets(st.sampled_from(sorted(CONFIG_VALUES)), max_size=4))
    return {name: draw(CONFIG_VALUES[name]) for name in sorted(names)}


# --- what every outcome must satisfy -----------------------------------------

# A Blocked or Waiting message must name what it is about.
USEFUL_WORDS = (
    "db",
    "object-storage",
    "ingress",
    "pod-defaults",
    "minio",
    "MinIO",
    "mlflow-db",
    "istio-pilot",
    "admission-webhook",
    "config option",
    "bucket",
    "Kubernetes",
    "MLflow pod",
    "oci-image",
)


def assert_human_status(status) -> None:
    """Active, Blocked or Waiting; a Blocked/Waiting message is one printable, bounded line naming its subject."""
    assert status.name in ("active", "blocked", "waiting"), f"hook left status {status!r}"
    if status.name == "active":
        return
    message = status.message
    assert message.strip(), f"{status.name} with an empty message"
    assert message.isprintable(), f"unprintable status message {message!r}"
    assert len(message) <= MAX_MESSAGE_LENGTH, f"status message of {len(message)} chars"
    assert any(word in message for word in USEFUL_WORDS), f"status names nothing useful: {message!r}"
    assert not re.search(r"\(\s*[\w ]*:\s*\)|: *$", message), f"status message with an empty list: {message!r}"
