"""The README documents every config option and action the charm declares."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _section(title):
    match = re.search(r"^## " + re.escape(title) + r"\n(.*?)(?=^## |\Z)", README, re.M | re.S)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def test_every_config_option_has_a_row_with_its_default():
    table = _section("Configuration")
    options = yaml.safe_load((ROOT / "config.yaml").read_text())["options"]
    for name, option in options.items():
        row = re.search(r"^\| `" + re.escape(name) + r"` \| ([^|]*) \|", table, re.M)
        assert row, f"config option {name} is not in the README's Configuration table"
        default = option["default"]
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        assert row.group(1).strip() in (f"`{shown}`", "empty" if shown == "" else None), name


def test_every_action_is_shown_with_its_juju_2_9_command():
    for action in yaml.safe_load((ROOT / "actions.yaml").read_text()):
        assert f"juju run-action mlflow-server/0 {action} --wait" in README
