"""src/yaml_text.py: libyaml reads what PyYAML's Python loader reads, and no more."""

from pathlib import Path

import pytest
import yaml

import yaml_text

ROOT = Path(__file__).resolve().parents[2]


def test_the_pinned_pyyaml_reads_with_libyaml() -> None:
    # requirements.txt's PyYAML wheels carry libyaml; a build without it would
    # silently put the ~25 ms a hook back (the fallback is for that case only).
    assert yaml_text.SAFE_LOADER is yaml.CSafeLoader


@pytest.mark.parametrize("name", ["metadata.yaml", "config.yaml", "actions.yaml", "bundle.yaml"])
def test_the_charms_files_load_to_the_same_objects(name) -> None:
    text = (ROOT / name).read_text()
    assert yaml_text.safe_load(text) == yaml.safe_load(text)
    with open(ROOT / name) as stream:  # a stream, as relation_data reads metadata.yaml
        assert yaml_text.safe_load(stream) == yaml.safe_load(text)


def test_only_safe_tags_are_built() -> None:
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml_text.safe_load("!!python/object/apply:os.system ['true']")
