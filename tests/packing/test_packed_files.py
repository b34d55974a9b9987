"""What the packed charm holds: charmcraft's own copy step run on this tree.

The charm plugin copies the project into the charm with charm_builder's
`handle_generic_paths` (the default ignores plus .jujuignore), then adds the
dispatch script and hooks. These tests run those two steps on a copy of the
repository's files plus the clutter a developer's tree holds, and compare the
result with the list of what the charm needs at run time, plus what an
operator reads or applies from it (docs/, the admin's RBAC file). Then
craft-parts' own fileset code applies the charm part's `prime:` to that
result, as `charmcraft pack` does before it zips the prime directory.
"""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

pytest.importorskip("charmcraft.models.project", reason="charmcraft lives in its own env: run `tox -e charmcraft`")

ROOT = Path(__file__).resolve().parents[2]

# What the charm reads at run time, plus what Charmhub shows (README, icon),
# the how-to pages the README links to, and what a cluster admin applies.
SHIPPED_TOP_LEVEL = {
    "src",
    "templates",
    "metadata.yaml",
    "config.yaml",
    "actions.yaml",
    "LICENSE",
    "icon.svg",
    "README.md",
    "docs",
    "kubeflow-profiles-rbac.yaml",
    "mlflow-workspaces-rbac.yaml",
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
    assert {"icon.svg", "README.md", "LICENSE", "kubeflow-profiles-rbac.yaml"} <= shipped


def test_no_tests_benches_caches_or_bytecode_are_shipped(packed):
    _, shipped = packed
    leaked = [p for p in shipped if p.split("/")[0] in {"tests", "bench", "demo", "scripts", ".ci", "build", "venv"}]
    leaked += [p for p in shipped if p.startswith(".") or "__pycache__" in p or p.endswith((".pyc", ".charm"))]
    assert not leaked


def _applied_files():
    """Repository files the README or a docs/ page tells someone to `kubectl apply -f` (or create/delete)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = set()
    for page in pages:
        for name in re.findall(r"kubectl (?:apply|create|delete) -f (\S+)", page.read_text()):
            if (ROOT / name).is_file():
                named.add(name)
    return named


def test_every_file_an_operator_is_told_to_apply_is_in_the_charm(packed):
    """A charm from Charmhub comes without this repository: what an admin applies must travel in it."""
    _, shipped = packed
    applied = _applied_files()
    assert "kubeflow-profiles-rbac.yaml" in applied, "the pattern no longer finds the profile grant: is it broken?"
    missing = sorted(applied - shipped)
    assert not missing, f"the docs tell an admin to apply {missing}, which the charm lacks: let it in in .jujuignore"


def _primed(entries, install: Path):
    from craft_parts.executor.filesets import Fileset, migratable_filesets

    files, _ = migratable_filesets(Fileset(entries, name="prime"), install, "default")
    return {str(f) for f in files}


def test_prime_keeps_everything_the_plugin_copied(packed, tmp_path):
    """`prime:` on the charm part must not narrow the charm: .jujuignore alone decides what it holds."""
    _, shipped = packed
    install = tmp_path / "install"
    for name in shipped:
        (install / name).parent.mkdir(parents=True, exist_ok=True)
        (install / name).write_bytes(b"")
    part = yaml.safe_load((ROOT / "charmcraft.yaml").read_text())["parts"]["charm"]
    assert _primed(part.get("prime", []), install) == shipped
    # What the check guards against: craft-parts keeps only the names a prime list gives.
    assert _primed(["kubeflow-profiles-rbac.yaml"], install) == {"kubeflow-profiles-rbac.yaml"}
