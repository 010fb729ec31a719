"""The workflow refuses a bad configuration before running anything, with the schema's message."""

import pytest
import yaml

from conftest import run_snakemake


@pytest.mark.parametrize(
    "config,message",
    [
        ({"imaging": {"size": "big"}}, "'big' is not of type 'integer'"),
        ({"imaging": {"sise": 512}}, "Additional properties are not allowed ('sise' was unexpected)"),
        ({"imaging": {"size": 511}}, "511 is not a multiple of 2"),
        ({"imaging": {"weighting": "robust"}}, "'robust' is not one of ['natural', 'uniform', 'briggs']"),
        ({"simulate": {"feeds": "helical"}}, "'helical' is not one of ['linear', 'circular']"),
        ({"faraday": {"chunk_mb": 0}}, "0 is less than or equal to the minimum of 0"),
        ({"input": {"ms": "/no/such/observation.ms"}}, "/no/such/observation.ms: Measurement Set not found"),
    ],
)
def test_bad_config_is_refused_with_a_clear_message(tmp_path, config, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "--configfile", str(path), "-n", check=False)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "work").exists()


def test_default_config_builds_the_dag(tmp_path):
    result = run_snakemake(tmp_path, "-n")
    text = result.stdout + result.stderr
    assert "image_channel" in text and "faraday_depth" in text and "export_moment_fits" in text
