"""A fake Juju agent for hook processes: hook tools on PATH answering from files.

Each hook tool (bench/juju-tools/) is a few lines of POSIX sh that appends
one line to $BENCH_JUJU/calls.log and `exec cat`s a precomputed answer file, so a tool
call costs one small process, as little as the bench can make it (a real
tool is a jujuc process talking to the unit agent: slower, never faster).
A call the fake cannot answer, or a tool it does not model, fails the hook
and is logged as UNANSWERED/UNMODELLED: missing fakes are noticed.

Writes (relation-set, status-set, pod-spec-set) are logged during the hook
and applied by `commit()` after the process ends, as the unit agent
applies a hook's settings when the hook succeeds; the next hook then reads
the bags the previous one left.

The model is the seed deployment with all four relations ready; every
peer's data is tests/contracts.py (CONTRACTS.md) byte for byte.
"""

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from contracts import APP, IMAGE, PEERS

UNIT = f"{APP}/0"


TOOLS_DIR = Path(__file__).resolve().parent / "juju-tools"

# Every other hook tool of Juju 2.9: present, so that a call is noticed
# rather than a "command not found"; each fails the hook (juju-tools/_unmodelled).
UNMODELLED = (
    "add-metric application-version-set close-port credential-get juju-reboot k8s-raw-get "
    "k8s-raw-set k8s-spec-get k8s-spec-set leader-get leader-set network-get open-port opened-ports "
    "payload-register payload-status-set payload-unregister pod-spec-get relation-model-get "
    "secret-add secret-get secret-grant secret-ids secret-info-get secret-remove secret-revoke secret-set "
    "storage-add storage-get storage-list unit-get"
).split()


def install_tools(bin_dir: Path) -> None:
    """The fake tools, beside the `python3` that src/charm.py's shebang finds."""
    for tool in TOOLS_DIR.iterdir():
        if not tool.name.startswith("_") or tool.name == "_common.sh":
            shutil.copy2(tool, bin_dir / tool.name)
    for name in UNMODELLED:
        shutil.copy2(TOOLS_DIR / "_unmodelled", bin_dir / name)


@dataclass(frozen=True)
class Call:
    tool: str
    args: str
    payload: Optional[Path] = None  # relation-set / pod-spec-set content


class FakeJuju:
    """One unit's view of the seed model, kept in a directory."""

    def __init__(self, root: Path, config_defaults: Dict):
        self.root = root
        self.answers = root / "answers"
        self.config_defaults = config_defaults

    def reset(self, config: Optional[Dict] = None) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        (self.root / "pending").mkdir(parents=True)
        a = self.answers
        (a / "state").mkdir(parents=True)  # the charm's stored state, kept on the controller
        self._json(a / "is-leader.json", True)
        # ops' planned_units(): the readiness check counts one pod a unit.
        self._json(a / "goal-state.json", {"units": {UNIT: {"status": "active", "since": "2026-11-26 00:00:00Z"}}})
        self.set_config(config or {})
        self._json(a / "action-get.json", {})
        self._json(a / "status-get.False.json", {"message": "", "status": "maintenance", "status-data": {}})
        self._json(
            a / "status-get.True.json",
            {"application-status": {"message": "", "status": "unknown", "status-data": {}, "units": {}}},
        )
        image = self.root / "resources" / "oci-image" / "content"
        image.parent.mkdir(parents=True)
        image.write_text(f"registrypath: {IMAGE}\nusername: ''\npassword: ''\n")
        (a / "resource-get").mkdir(parents=True)
        (a / "resource-get" / "oci-image.txt").write_text(f"{image}\n")
        for endpoint, peer in PEERS.items():
            rel_id, remote_app, app_bag, unit_bag = peer.relation_id, peer.remote_app, peer.app_data, peer.unit_data
            self._json(a / "relation-ids" / f"{endpoint}.json", [f"{endpoint}:{rel_id}"])
            self._json(a / "relation-list" / f"{rel_id}.json", [f"{remote_app}/0"])
            self._json(a / "relation-list" / f"{rel_id}.app.json", remote_app)
            self._json(a / "relation-get" / str(rel_id) / f"{remote_app}.app.json", app_bag)
            self._json(a / "relation-get" / str(rel_id) / remote_app / "0.json", unit_bag)
            self._json(a / "relation-get" / str(rel_id) / f"{APP}.app.json", {})
            self._json(a / "relation-get" / str(rel_id) / APP / "0.json", {})
        # The `replicas` peer relation Juju 2.9 makes at deploy: a lone unit lists
        # no other unit, and its app bag holds the proxied bucket once there is one.
        peer_id = 9
        self._json(a / "relation-ids" / "replicas.json", [f"replicas:{peer_id}"])
        self._json(a / "relation-list" / f"{peer_id}.json", [])
        self._json(a / "relation-list" / f"{peer_id}.app.json", APP)
        self._json(a / "relation-get" / str(peer_id) / f"{APP}.app.json", {})
        self._json(a / "relation-get" / str(peer_id) / APP / "0.json", {})
        # The tutorial relates no Prometheus; config-changed still asks whether one is.
        self._json(a / "relation-ids" / "metrics-endpoint.json", [])
        self.clear_log()

    def set_config(self, overrides: Dict) -> None:
        self._json(self.answers / "config-get.json", {**self.config_defaults, **overrides})

    @staticmethod
    def _json(path: Path, value) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))

    def clear_log(self) -> None:
        for name in ("calls.log", "juju-log.txt"):
            (self.root / name).write_text("")
        for p in (self.root / "pending").iterdir():
            p.unlink()

    def calls(self) -> List[Call]:
        calls = []
        for line in (self.root / "calls.log").read_text().splitlines():
            tool, _, args = line.partition(" ")
            payload = None
            if tool in ("relation-set", "pod-spec-set") and " <" in args:
                args, _, path = args.rpartition(" <")
                payload = Path(path)
            calls.append(Call(tool, args, payload))
        return calls

    def juju_log(self) -> str:
        return (self.root / "juju-log.txt").read_text()

    def commit(self, calls: List[Call]) -> Dict:
        """Apply the hook's writes, as the unit agent does when a hook succeeds."""
        effects: Dict = {"status": None, "pod_spec": None, "relation_set_keys": []}
        for call in calls:
            if call.tool == "relation-set":
                words = call.args.split()
                rel_id = words[words.index("-r") + 1].split(":")[-1]
                bag_file = (
                    self.answers / "relation-get" / rel_id / (f"{APP}.app.json" if "--app" in words else f"{UNIT}.json")
                )
                bag = json.loads(bag_file.read_text())
                for key, value in (yaml.safe_load(call.payload.read_text()) or {}).items():
                    effects["relation_set_keys"].append((rel_id, key))
                    if value == "":
                        bag.pop(key, None)
                    else:
                        bag[key] = value
                bag_file.write_text(json.dumps(bag))
            elif call.tool == "status-set":
                app_flag, _, rest = call.args.partition(" ")
                status, _, message = rest.partition(" ")
                effects["status"] = (status, message)
                which = "True" if app_flag == "--application=True" else "False"
                if which == "False":
                    self._json(
                        self.answers / "status-get.False.json",
                        {"message": message, "status": status, "status-data": {}},
                    )
            elif call.tool == "pod-spec-set":
                effects["pod_spec"] = yaml.safe_load(call.payload.read_text())

        return effects
