# Helpers shared by the rules: paths, the channel list and resource estimates.
import os
from pathlib import Path

from spectropol.channels import channel_settings, channel_width, parse_channel_ranges, plan_blocks
from spectropol.errors import SpectropolError
from spectropol.fingerprint import ms_fingerprints
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
    """The MS the rules read. A given MS is reached through a link at a fixed path when reruns
    follow its content, so that pointing the config at a re-delivered copy reruns only what its
    content changes; without fingerprints, the MS itself (file times decide)."""
    if config["input"]["ms"] is None:
        return f"{WORK}/ms/demo.ms"
    return f"{WORK}/ms/input.ms" if config["channels"]["fingerprint"] else config["input"]["ms"]


def channel_count():
    """Channels of the selected SPW; read from the MS (SPECTRAL_WINDOW only) or the demo config."""
    if config["input"]["ms"] is None:
        return config["simulate"]["nchan"]
    try:
        return len(channel_frequencies(config["input"]["ms"], config["input"]["spw"]))
    except SpectropolError as err:
        raise WorkflowError(str(err)) from None


def imaging_params():
    """Everything that changes the images; a change reruns every image job."""
    keys = ("size", "weighting", "robust", "wgridding", "epsilon")
    return {k: config["imaging"][k] for k in keys}


def clean_params():
    """Deconvolution settings; a change reruns every image job."""
    return dict(config["clean"])


NCHAN = channel_count()
CHANNEL_WIDTH = channel_width(NCHAN)
try:
    EXCLUDED = parse_channel_ranges(config["channels"]["exclude"], NCHAN, "channels.exclude")
    CHANNEL_SETTINGS = channel_settings(imaging_params(), clean_params(), config["channels"]["overrides"], NCHAN)
except ValueError as err:
    raise WorkflowError(f"config: {err}") from None
# {label: channel numbers}: the unit of split and image jobs, and of reruns.
BLOCKS = plan_blocks(NCHAN, config["channels"]["block"], EXCLUDED)
if not BLOCKS:
    raise WorkflowError(f"config: channels.exclude leaves none of the {NCHAN} channels to image")


def channel_name(channel):
    return f"{channel:0{CHANNEL_WIDTH}d}"


def stage_input_ms():
    """Link the configured MS at input_ms() and fingerprint its channels (cached, incremental).
    The demo MS is made by a rule, so its jobs follow file times instead."""
    if config["input"]["ms"] is None or not config["channels"]["fingerprint"]:
        return None
    link, target = Path(input_ms()), os.path.abspath(config["input"]["ms"])
    link.parent.mkdir(parents=True, exist_ok=True)
    if not (link.is_symlink() and os.readlink(link) == target):
        partial = link.with_name(link.name + ".partial")
        partial.unlink(missing_ok=True)
        partial.symlink_to(target, target_is_directory=True)
        partial.replace(link)
    try:
        return ms_fingerprints(target, column=config["input"]["column"], spw=config["input"]["spw"],
                               field=config["input"]["field"], cache_path=f"{WORK}/ms/fingerprints.json")
    except SpectropolError as err:
        raise WorkflowError(str(err)) from None


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
FINGERPRINTS = stage_input_ms()


def ms_input():
    """With fingerprints the MS's content decides what reruns, so its file times are ignored."""
    return ancient(input_ms()) if FINGERPRINTS else input_ms()


def block_channels(wildcards):
    return BLOCKS[wildcards.block]


def block_fingerprints(wildcards):
    """The content of the block's channels: a change to any reruns the block (params trigger)."""
    return [FINGERPRINTS.channels[c] for c in BLOCKS[wildcards.block]] if FINGERPRINTS else None


def block_settings(wildcards):
    """Imaging and CLEAN settings of each channel of the block, overrides applied."""
    return [CHANNEL_SETTINGS[c] for c in BLOCKS[wildcards.block]]


def channel_image_stores():
    """Every imaged channel's image store, in frequency order."""
    return [f"{RESULTS}/channels/{label}/{channel_name(c)}.zarr" for label, chans in BLOCKS.items() for c in chans]


wildcard_constraints:
    block=r"\d+(-\d+)?",


def cube_products():
    return [f"{RESULTS}/cube/cube.zarr"] + expand(f"{RESULTS}/cube/cube_{{stokes}}.fits", stokes=STOKES)


def moment_products():
    return [f"{RESULTS}/moments/moments.zarr"] + expand(
        f"{RESULTS}/moments/{{quantity}}_{{moment}}.fits", quantity=QUANTITIES, moment=MOMENTS
    )


def cube_image():
    """Restored images when deconvolution runs, else dirty."""
    return config["cube"]["image"] if config["clean"]["niter"] > 0 else "dirty"


def image_mem_mb(wildcards, input):
    """One channel at a time: its visibilities twice (Stokes and weights) plus about 12
    image-sized float planes with the oversampled gridding grid."""
    npix = config["imaging"]["size"]
    per_channel_mb = input.size_mb / len(BLOCKS[wildcards.block])
    return int(300 + 3 * per_channel_mb + 12 * npix * npix * 4 / 1e6 * 4)


def image_runtime(wildcards, input):
    """Minutes for the block: gridding grows with visibilities and pixels, CLEAN with pixels and
    iterations; generous, since a job killed at its limit costs more than an idle reservation."""
    npix = config["imaging"]["size"]
    nchan = len(BLOCKS[wildcards.block])
    niter = max(s["clean"]["niter"] for s in block_settings(wildcards))
    clean = niter / 1000 * (npix / 1024) ** 2 * 2
    return int(10 + input.size_mb / 50 + nchan * ((npix / 1024) ** 2 * 2 + clean))


def split_runtime(wildcards):
    return int(10 + len(BLOCKS[wildcards.block]) * 0.5)


def cube_mem_mb(wildcards):
    npix = config["imaging"]["size"]
    return int(400 + 6 * 4 * npix * npix * 4 / 1e6)
