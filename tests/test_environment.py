"""The conda environment pins exactly the versions that make run / make test / CI install."""

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements/constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_conda_envs_pin_the_constraint_versions():
    pins = _constraints()
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(env_file.read_text())
        pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
        for requirement in pip_section:
            name, version = requirement.split("==")
            assert pins.get(name.lower().replace("_", "-")) == version, f"{env_file.name}: {requirement} vs constraints"


def test_every_library_dependency_is_pinned():
    import tomllib

    pins = _constraints()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        name = requirement.split(">")[0].split("=")[0].split("[")[0].strip().lower()
        assert name in pins, f"{name} is a dependency but not pinned in requirements/constraints.txt"


def test_installed_versions_are_the_pinned_ones():
    from importlib.metadata import version

    pins = _constraints()
    for name in ("numpy", "ducc0", "python-casacore", "zarr", "xarray", "dask", "astropy", "snakemake"):
        assert version(name) == pins[name], name
