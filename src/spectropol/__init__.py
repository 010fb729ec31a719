"""spectropol: spectropolarimetric imaging and Faraday rotation, from Measurement Set to catalogue."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spectropol")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"
