"""Controller storage, one read and one write a hook, against Juju's hook tools.

The hook tools are the bench's fakes (bench/juju-tools/): POSIX sh that keep
the unit's state in a directory and speak the shapes Juju 2.9.31 does
(state-get.go, state-set.go, state-delete.go; see src/controller_storage.py).
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, List

import pytest
from ops.storage import JujuStorage, _JujuStorageBackend

import controller_storage
from controller_storage import BatchedJujuStorage, BatchedStateBackend

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "bench" / "juju-tools"


class Agent:
    """The fake unit agent's directory: the state Juju holds and the calls made."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "answers" / "state").mkdir(parents=True)
        (root / "answers" / "is-leader.json").write_text("true")  # ops asks in every hook
        self.clear()

    def clear(self) -> None:
        (self.root / "calls.log").write_text("")
        (self.root / "juju-log.txt").write_text("")

    def calls(self, prefix: str = "state-") -> List[str]:
        return [c for c in (self.root / "calls.log").read_text().splitlines() if c.startswith(prefix)]

    def env(self) -> Dict[str, str]:
        return {"BENCH_JUJU": str(self.root), "PATH": f"{TOOLS}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Agent:
    a = Agent(tmp_path / "agent")
    for name, value in a.env().items():
        monkeypatch.setenv(name, value)
    return a


SNAPSHOT = {"spec_hash": "a1b2", "spec_generation": 3, "profiles_seen": ["admin", "bob"], "url": "http://x:5000/"}
NOTICES = [("MlflowServerCharm/on/update_status[7]", "MlflowServerCharm", "_on_event")]


def test_a_hook_reads_once_and_writes_only_what_changed(agent: Agent) -> None:
    # GIVEN a hook that reads and writes many keys, several times each
    hook = BatchedStateBackend()
    with pytest.raises(KeyError):
        hook.get("Charm/StoredStateData[_stored]")
    for i in range(5):
        hook.set("#notices#", NOTICES)
        hook.set("Charm/StoredStateData[_stored]", {**SNAPSHOT, "spec_generation": i})
        assert hook.get("#notices#") == NOTICES
    hook.set("Charm/on/update_status[7]", {"x": 1})
    hook.delete("Charm/on/update_status[7]")
    # THEN it asked Juju once, and hands the two surviving keys back in one call
    assert agent.calls() == ["state-get --format=yaml"]
    hook.flush()
    assert agent.calls() == ["state-get --format=yaml", "state-set --file -"]

    # AND the next hook reads them back exactly, tuples included
    agent.clear()
    nxt = BatchedStateBackend()
    assert nxt.get("Charm/StoredStateData[_stored]") == {**SNAPSHOT, "spec_generation": 4}
    assert nxt.get("#notices#") == NOTICES
    with pytest.raises(KeyError):
        nxt.get("Charm/on/update_status[7]")
    # AND a hook that changes nothing writes nothing
    nxt.set("#notices#", NOTICES)
    nxt.flush()
    assert agent.calls() == ["state-get --format=yaml"]


def test_a_key_stored_before_and_dropped_now_is_deleted(agent: Agent) -> None:
    first = BatchedStateBackend()
    first.set("Charm/on/config_changed[3]", {"deferred": True})
    first.set("#notices#", NOTICES)
    first.flush()
    agent.clear()

    second = BatchedStateBackend()
    second.delete("Charm/on/config_changed[3]")
    second.delete("never/stored")
    second.flush()
    assert agent.calls() == ["state-get --format=yaml", "state-delete Charm/on/config_changed[3]"]
    assert BatchedStateBackend().get("#notices#") == NOTICES
    with pytest.raises(KeyError):
        BatchedStateBackend().get("Charm/on/config_changed[3]")


def test_a_hook_that_never_commits_stores_nothing(agent: Agent) -> None:
    # Juju discards a failed hook's state changes; batching never even sends them.
    hook = BatchedStateBackend()
    hook.set("Charm/StoredStateData[_stored]", SNAPSHOT)
    assert agent.calls() == ["state-get --format=yaml"]
    with pytest.raises(KeyError):
        BatchedStateBackend().get("Charm/StoredStateData[_stored]")


def test_a_hook_that_touches_no_state_calls_no_tool(agent: Agent) -> None:
    BatchedStateBackend().flush()
    assert agent.calls() == []


@pytest.mark.parametrize("writer_is_ops", [True, False], ids=["ops-writes-batched-reads", "batched-writes-ops-reads"])
def test_state_moves_between_ops_backend_and_this_one(agent: Agent, writer_is_ops: bool) -> None:
    # An upgrade from a charm revision on ops' own backend keeps its state, and back.
    ops_backend = JujuStorage(_JujuStorageBackend())
    batched = BatchedJujuStorage()
    writer, reader = (ops_backend, batched) if writer_is_ops else (batched, ops_backend)
    writer.save_snapshot("Charm/StoredStateData[_stored]", SNAPSHOT)
    writer.save_notice(*NOTICES[0])
    writer.commit()
    assert reader.load_snapshot("Charm/StoredStateData[_stored]") == SNAPSHOT
    assert list(reader.notices()) == NOTICES


TINY_CHARM = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {src!r})
    import ops
    import controller_storage

    class Tiny(ops.CharmBase):
        _stored = ops.StoredState()

        def __init__(self, framework):
            super().__init__(framework)
            self._stored.set_default(hooks=0)
            framework.observe(self.on.update_status, self._on_update_status)

        def _on_update_status(self, event):
            self._stored.hooks += 1
            if self._stored.hooks == 2:
                raise RuntimeError("second hook fails")

    controller_storage.main(Tiny)
    """
)


def test_ops_main_runs_the_charm_on_batched_controller_storage(agent: Agent, tmp_path: Path) -> None:
    # The pinned ops' manager, with its storage swapped, run as Juju runs a hook.
    charm_dir = tmp_path / "charm"
    charm_dir.mkdir()
    (charm_dir / "metadata.yaml").write_text("name: tiny\n")
    (charm_dir / "charm.py").write_text(TINY_CHARM.format(src=str(ROOT / "src")))
    env = {
        **os.environ,
        **agent.env(),
        "JUJU_CHARM_DIR": str(charm_dir),
        "JUJU_DISPATCH_PATH": "hooks/update-status",
        "JUJU_UNIT_NAME": "tiny/0",
        "JUJU_MODEL_NAME": "kubeflow",
        "JUJU_VERSION": "2.9.31",
    }

    def hook() -> "subprocess.CompletedProcess[str]":
        agent.clear()
        return subprocess.run([sys.executable, str(charm_dir / "charm.py")], env=env, text=True, capture_output=True)

    first = hook()
    assert first.returncode == 0, first.stderr
    assert agent.calls() == ["state-get --format=yaml", "state-set --file -"]
    # A hook that raises writes nothing: the third hook sees hooks == 1 again.
    assert hook().returncode != 0
    assert agent.calls() == ["state-get --format=yaml"]
    assert hook().returncode != 0
    assert BatchedStateBackend().get("Tiny/StoredStateData[_stored]") == {"hooks": 1}


def test_main_is_the_charm_entry_point() -> None:
    assert "controller_storage.main(MlflowServerCharm)" in (ROOT / "src" / "charm.py").read_text()
    assert controller_storage.main.__module__ == "controller_storage"
