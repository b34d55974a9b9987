"""What the packed charm holds: charmcraft's own copy step run on this tree.

The charm plugin copies the project into the charm with charm_builder's
`handle_generic_paths` (the default ignores plus .jujuignore), then adds the
dispatch script and hooks. These tests run those two steps on a copy of the
repository's files plus the clutter a developer's tree holds, and compare the
result with the list of what the charm needs at run time.
"""

import subprocess
from pathlib import Path

import pytest

pytest.importorskip("charmcraft.models.project", reason="charmcraft lives in its own env: run `tox -e charmcraft`")

ROOT = Path(__file__).resolve().parents[2]

# What the charm reads at run time, plus what Charmhub shows (README, icon).
SHIPPED_TOP_LEVEL = {
    "src",
    "templates",
    "metadata.yaml",
    "config.yaml",
    "actions.yaml",
    "LICENSE",
    "icon.svg",
    "README.md",
}
ADDED_BY_CHARMCRAFT = {"dispatch", "hooks/install", "hooks/start", "hooks/upgrade-charm"}

# Untracked things a working tree holds; none may reach the charm.
CLUTTER = (
    ".venv/bin/python",
    ".cache/bootstrap/bin/tox",
    ".tox/dev/bin/python",
    "src/__pycache__/charm.cpython-38.pyc",
    "templates/__pycache__/db_upgrade.cpython-311.pyc",
    "tests/__pycache__/conftest.cpython-311.pyc",
    ".pytest_cache/v/cache/nodeids",
    ".ruff_cache/CACHEDIR.TAG",
    ".hypothesis/examples/x",
    "build/charm/x",
    "mlflow-server_amd64.charm",
    "bench/results.json",
    "demo/notebook.ipynb",
    "venv/lib/x",
)


def _project_files() -> list:
    """Tracked files and untracked ones git does not ignore: what a commit would hold."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.fail(f"this test lists the project with git and needs a git checkout: {e}")
    return [p for p in listing.decode().split("\0") if p and (ROOT / p).is_file()]


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    from charmcraft.charm_builder import CharmBuilder

    build = tmp_path_factory.mktemp("build")
    files = _project_files()
    for name in files + list(CLUTTER):
        target = build / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes() if name in files else b"clutter")
    install = tmp_path_factory.mktemp("install") / "charm"
    builder = CharmBuilder(builddir=build, installdir=install, entrypoint=build / "src" / "charm.py")
    install.mkdir()
    builder.handle_dispatcher(builder.handle_generic_paths())
    shipped = {str(p.relative_to(install)) for p in install.rglob("*") if p.is_file()}
    return files, shipped


def test_the_charm_holds_exactly_what_it_needs(packed):
    files, shipped = packed
    expected = {f for f in files if f.split("/")[0] in SHIPPED_TOP_LEVEL} | ADDED_BY_CHARMCRAFT
    assert shipped == expected, (
        f"unexpected: {sorted(shipped - expected)}; missing: {sorted(expected - shipped)} (edit .jujuignore)"
    )


def test_every_runtime_file_is_shipped(packed):
    _, shipped = packed
    for needed in ("src/charm.py", "templates/pod_spec.yaml.j2", "templates/db_upgrade.py", "metadata.yaml"):
        assert needed in shipped
    assert {"icon.svg", "README.md", "LICENSE"} <= shipped


def test_no_tests_benches_caches_or_bytecode_are_shipped(packed):
    _, shipped = packed
    leaked = [p for p in shipped if p.split("/")[0] in {"tests", "bench", "demo", "scripts", ".ci", "build", "venv"}]
    leaked += [p for p in shipped if p.startswith(".") or "__pycache__" in p or p.endswith((".pyc", ".charm"))]
    assert not leaked
