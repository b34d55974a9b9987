"""Scenario's own YAML on libyaml, for every layer that runs the charm under Scenario.

Scenario writes metadata.yaml, config.yaml and actions.yaml to a fresh charm
root for every run, and reads them for every Context, with PyYAML's
pure-Python dumper and loader: about a quarter of a Scenario test's CPU.
`install()` gives scenario._runtime and scenario.state a PyYAML whose
safe_dump and safe_load use libyaml's (the same documents, the same
objects). The charm's own YAML is untouched: src/yaml_text.py decides that.
"""

import scenario._runtime
import scenario.state
import yaml


class _LibYaml:
    def __getattr__(self, name):
        return getattr(yaml, name)

    @staticmethod
    def safe_dump(data, stream=None, **kwargs):
        return yaml.dump(data, stream, Dumper=yaml.CSafeDumper, **kwargs)

    @staticmethod
    def safe_load(stream):
        return yaml.load(stream, Loader=yaml.CSafeLoader)  # noqa: S506 (a safe loader)


def install() -> None:
    scenario._runtime.yaml = scenario.state.yaml = _LibYaml()
