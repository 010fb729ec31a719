"""spectropol: spectropolarimetric imaging and Faraday rotation, from Measurement Set to catalogue."""

__version__ = "0.1.0"  # the package's version (pyproject.toml reads it from here)
