"""charmcraft.yaml, checked by charmcraft 4.x itself (run with `tox -e charmcraft`).

`charmcraft pack` needs an Ubuntu host or LXD/Multipass through snapd, so it
cannot run here; these tests load the project the way pack does: charmcraft's
own project model (metadata.yaml, config.yaml and actions.yaml merged in),
its build plan, and its command line.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("charmcraft.models.project", reason="charmcraft lives in its own env: run `tox -e charmcraft`")

ROOT = Path(__file__).resolve().parents[2]
# charmcraft must load every action actions.yaml declares, no more, no fewer.
ACTIONS = set(yaml.safe_load((ROOT / "actions.yaml").read_text()))
PROJECT_FILES = ("charmcraft.yaml", "metadata.yaml", "config.yaml", "actions.yaml", "requirements.txt")


@pytest.fixture
def load_project(monkeypatch):
    """charmcraft's loader; the charm part's paths resolve from the project directory, as in pack."""
    from charmcraft.models.project import CharmcraftProject
    from charmcraft.parts import setup_parts

    setup_parts()  # registers the charm plugin, whose properties the model validates

    def load(directory: Path):
        monkeypatch.chdir(directory)
        return CharmcraftProject.from_yaml_file(directory / "charmcraft.yaml")

    return load


def _copy_project(destination: Path) -> Path:
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, destination / name)
    (destination / "src").mkdir()
    shutil.copy(ROOT / "src" / "charm.py", destination / "src" / "charm.py")
    return destination


def test_charmcraft_yaml_is_a_valid_charmcraft_4_project(load_project):
    from charmcraft.models.project import PlatformCharm

    project = load_project(ROOT)
    metadata = yaml.safe_load((ROOT / "metadata.yaml").read_text())

    assert isinstance(project, PlatformCharm)
    assert project.base == "ubuntu@20.04"  # the operator pod's OS: Python 3.8
    assert project.name == metadata["name"]  # merged in from metadata.yaml
    assert set(project.actions) == ACTIONS
    assert "mlflow_port" in project.config["options"]
    charm_part = project.parts["charm"]
    assert charm_part["plugin"] == "charm"
    assert charm_part["charm-strict-dependencies"] is True


def test_build_plan_is_one_ubuntu_20_04_amd64_charm(load_project):
    import craft_platforms

    project = load_project(ROOT)
    platforms = project.model_dump(mode="json", by_alias=True)["platforms"]
    plan = craft_platforms.charm.get_platforms_charm_build_plan(base=project.base, platforms=platforms)

    # One charm, mlflow-server_amd64.charm (charmcraft names it <name>_<platform>.charm).
    assert [(b.platform, str(b.build_base), str(b.build_on), str(b.build_for)) for b in plan] == [
        ("amd64", "ubuntu@20.04", "amd64", "amd64")
    ]


def test_metadata_stays_in_metadata_yaml(load_project, tmp_path):
    """charmcraft refuses a name given twice; and without one here, ops-scenario reads metadata.yaml."""
    from craft_application.errors import CraftValidationError

    ours = yaml.safe_load((ROOT / "charmcraft.yaml").read_text())
    assert not {"name", "summary", "description"} & set(ours)

    project = _copy_project(tmp_path)
    (project / "charmcraft.yaml").write_text((ROOT / "charmcraft.yaml").read_text() + "name: mlflow-server\n")
    with pytest.raises(CraftValidationError, match="cannot be duplicated"):
        load_project(project)


def test_an_unsupported_base_is_rejected(load_project, tmp_path):
    """The model really checks the base: the check above could not pass on anything."""
    from craft_application.errors import CraftValidationError

    project = _copy_project(tmp_path)
    text = (ROOT / "charmcraft.yaml").read_text().replace("base: ubuntu@20.04", "base: ubuntu@19.10")
    (project / "charmcraft.yaml").write_text(text)
    with pytest.raises(CraftValidationError):
        load_project(project)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_binary_packages_are_exactly_the_pinned_closure():
    """Every pinned package installs from a wheel (py38-compat proves the wheels exist), none other."""
    part = yaml.safe_load((ROOT / "charmcraft.yaml").read_text())["parts"]["charm"]
    pinned = {
        _canonical(line.split("==")[0])
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    listed = {_canonical(name) for name in part["charm-binary-python-packages"]}
    assert listed == pinned, "update charm-binary-python-packages in charmcraft.yaml after `tox -e lock`"
    assert part["charm-requirements"] == ["requirements.txt"]


def test_charmcraft_command_line_loads_the_project(tmp_path):
    """`charmcraft expand-extensions` runs the CLI's whole project loading, host-side."""
    charmcraft = Path(sys.executable).parent / "charmcraft"
    env = dict(os.environ, HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path))
    result = subprocess.run(
        [str(charmcraft), "expand-extensions"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    expanded = yaml.safe_load(result.stdout)
    assert expanded["name"] == "mlflow-server"
    assert expanded["base"] == "ubuntu@20.04"
    assert expanded["parts"]["charm"]["plugin"] == "charm"
    assert set(expanded["actions"]) == ACTIONS
