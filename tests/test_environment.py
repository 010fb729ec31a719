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


def test_the_faraday_stage_turns_numpy_huge_page_advice_off_unless_the_user_asks():
    # without_huge_page_advice (spectropol/__init__.py: synchronous compaction cost a Faraday pass
    # 0.3-1 s of system time) before NumPy's import turns the advice off; a value the user set wins;
    # importing spectropol alone changes nothing.
    import os
    import subprocess
    import sys

    def advice(setup: str, **env: str) -> str:
        probe = f"import spectropol; {setup}import numpy; print(numpy._core.multiarray._get_madvise_hugepage())"
        clean = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
        return subprocess.run([sys.executable, "-c", probe], env=clean | env, capture_output=True, text=True,
                              check=True).stdout.strip()

    off = "spectropol.without_huge_page_advice(); "
    assert (advice(off), advice(off, NUMPY_MADVISE_HUGEPAGE="1"), advice("")) == ("False", "True", "True")
