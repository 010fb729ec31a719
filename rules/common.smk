# Helpers shared by the rules: paths, the channel list and resource estimates.
import os
from pathlib import Path

from spectropol.errors import SpectropolError
from spectropol.ms import channel_frequencies, stokes_available

# Scripts import the library from this checkout, in a venv or in a conda environment alike.
_src = str(Path(workflow.basedir) / "src")
if _src not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_src, os.environ.get("PYTHONPATH")) if p)

WORK = config["work_dir"]
RESULTS = config["results_dir"]
STOKES = ["I", "Q", "U", "V"]
QUANTITIES = ["Q", "U", "P"]
MOMENTS = ["mean", "std", "skewness", "kurtosis"]
FARADAY_PEAK_MAPS = ["peak_pi", "peak_pi_debiased", "peak_phi", "peak_phi_err", "pol_angle0_deg", "pol_angle0_err_deg",
                     "fdf_noise", "snr", "cc_moment2"]


def resource_path(path):
    """A path from the config: as given if it exists, else relative to the workflow's folder."""
    return path if os.path.exists(path) else str(Path(workflow.basedir) / path)


def input_ms():
    return config["input"]["ms"] or f"{WORK}/ms/demo.ms"


def channel_count():
    """Channels of the selected SPW; read from the MS (SPECTRAL_WINDOW only) or the demo config."""
    if config["input"]["ms"] is None:
        return config["simulate"]["nchan"]
    try:
        return len(channel_frequencies(config["input"]["ms"], config["input"]["spw"]))
    except SpectropolError as err:
        raise WorkflowError(str(err)) from None


CHANNELS = [f"{c:05d}" for c in range(channel_count())]


def polarisation_available():
    """Whether the data can form Stokes Q and U, which the moments and Faraday stages need."""
    if config["input"]["ms"] is None:
        return True
    try:
        stokes = stokes_available(config["input"]["ms"], config["input"]["spw"])
    except SpectropolError as err:
        raise WorkflowError(str(err)) from None
    if not {"Q", "U"} <= set(stokes):
        logger.warning(f"{config['input']['ms']}: correlations give Stokes {', '.join(stokes)} only; "
                       "Faraday moments and RM synthesis need Q and U and are skipped")
        return False
    return True


POLARISATION = polarisation_available()


def check_writable(key):
    """Refuse, before anything runs, an output folder that cannot be created or written."""
    path = Path(config[key]).absolute()
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise WorkflowError(f"{config[key]}: cannot create {key} there, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise WorkflowError(f"{config[key]}: cannot write {key} there, {existing} is not writable")


check_writable("work_dir")
check_writable("results_dir")


wildcard_constraints:
    chan=r"\d{5}",


def cube_products():
    return [f"{RESULTS}/cube/cube.zarr"] + expand(f"{RESULTS}/cube/cube_{{stokes}}.fits", stokes=STOKES)


def moment_products():
    return [f"{RESULTS}/moments/moments.zarr"] + expand(
        f"{RESULTS}/moments/{{quantity}}_{{moment}}.fits", quantity=QUANTITIES, moment=MOMENTS
    )


def imaging_params():
    """Everything that changes the images; a change reruns every image job."""
    keys = ("size", "weighting", "robust", "wgridding", "epsilon")
    return {k: config["imaging"][k] for k in keys}


def clean_params():
    """Deconvolution settings; a change reruns every image job."""
    return dict(config["clean"])


def cube_image():
    """Restored images when deconvolution runs, else dirty."""
    return config["cube"]["image"] if config["clean"]["niter"] > 0 else "dirty"


def image_mem_mb(wildcards, input):
    """Visibilities twice (Stokes and weights) plus about 12 image-sized float planes with the
    oversampled gridding grid."""
    npix = config["imaging"]["size"]
    return int(300 + 3 * input.size_mb + 12 * npix * npix * 4 / 1e6 * 4)


def image_runtime(wildcards, input):
    """Minutes for one channel: gridding grows with visibilities and pixels, CLEAN with pixels and
    iterations; generous, since a job killed at its limit costs more than an idle reservation."""
    npix = config["imaging"]["size"]
    clean = config["clean"]["niter"] / 1000 * (npix / 1024) ** 2 * 2
    return int(10 + input.size_mb / 50 + (npix / 1024) ** 2 * 2 + clean)


def cube_mem_mb(wildcards):
    npix = config["imaging"]["size"]
    return int(400 + 6 * 4 * npix * npix * 4 / 1e6)
