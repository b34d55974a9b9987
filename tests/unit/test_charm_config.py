import pytest

from charm_config import is_valid_bucket_name, parse_config
from helpers import DEFAULT_CONFIG, config
from problems import Blocked


def test_defaults_parse_to_the_documented_values():
    parsed = config()
    assert (parsed.port, parsed.bucket, parsed.create_bucket, parsed.workers) == (5000, "mlflow", True, 4)
    assert parsed.serve_artifacts is False and parsed.nodeport_enabled is False
    assert parsed.allowed_hosts == ("*",) and parsed.cors_allowed_origins == ()
    assert (parsed.telemetry, parsed.worker_timeout, parsed.multipart_chunk_mib) == (False, 600, 16)


def test_config_yaml_defaults_are_valid(charm_root):
    import yaml

    options = yaml.safe_load((charm_root / "config.yaml").read_text())["options"]
    defaults = {name: option["default"] for name, option in options.items()}
    assert defaults == DEFAULT_CONFIG
    parse_config(defaults)


@pytest.mark.parametrize(
    "option, value",
    [
        ("mlflow_port", 0),
        ("mlflow_port", 80),
        ("mlflow_port", 65536),
        ("mlflow_port", "5000"),
        ("mlflow_port", True),
        ("workers", 0),
        ("workers", 65),
        ("mlflow_nodeport", 8080),
        ("mlflow_nodeport", 32768),
        ("default_artifact_root", "s3://mlflow/"),
        ("default_artifact_root", "ML"),
        ("default_artifact_root", ""),
        ("default_artifact_root", 5),
        ("create_default_artifact_root_if_missing", "true"),
        ("serve_artifacts", 1),
        ("enable_mlflow_nodeport", None),
        ("allowed_hosts", "good.example, bad host"),
        ("cors_allowed_origins", "10.64.140.43.nip.io"),
        ("enable_telemetry", "false"),
        ("worker_timeout", 29),
        ("worker_timeout", 3601),
        ("multipart_upload_chunk_size", 4),
        ("multipart_upload_chunk_size", 5121),
        ("multipart_upload_chunk_size", "100"),
    ],
)
def test_each_bad_option_blocks_naming_it(option, value):
    with pytest.raises(Blocked) as raised:
        config(**{option: value})
    assert option in raised.value.message


def test_a_missing_option_blocks_naming_it():
    raw = dict(DEFAULT_CONFIG)
    del raw["workers"]
    with pytest.raises(Blocked, match="workers"):
        parse_config(raw)


@pytest.mark.parametrize("name", ["mlflow", "abc", "my-bucket.v2", "a" * 63, "0bucket"])
def test_valid_bucket_names(name):
    assert is_valid_bucket_name(name)


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "Mlflow", "-mlflow", "mlflow-", "ml..flow", "ml.-flow", "192.168.1.1", "xn--bucket", "b-s3alias"],
)
def test_invalid_bucket_names(name):
    assert not is_valid_bucket_name(name)


def test_host_and_origin_lists_are_split_and_trimmed():
    parsed = config(allowed_hosts=" gw.example , 10.64.140.43.nip.io,,", cors_allowed_origins="http://gw.example")
    assert parsed.allowed_hosts == ("gw.example", "10.64.140.43.nip.io")
    assert parsed.cors_allowed_origins == ("http://gw.example",)
