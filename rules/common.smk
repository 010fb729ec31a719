# Bindings of the Plan (spectropol.planning) to Snakemake: input functions, params and resources.
# Nothing here reads data; the plan is computed once, when the workflow is read.
import sys
from functools import lru_cache
from pathlib import Path

from spectropol.errors import SpectropolError
from spectropol.io.fingerprint import read_fingerprints, storage_signature
from spectropol.io.stores import software_versions
from spectropol.options import as_dict
from spectropol.planning import check_output_folder, observe, plan
from spectropol.planning.code import rule_code_digest
from spectropol.planning.provenance import run_identity


def refuse(message):
    """Stop before any job, in one line, as a job's own error would read."""
    print(f"spectropol: error: {message}", file=sys.stderr)
    raise WorkflowError(message)


try:
    check_output_folder(config["work_dir"], "work_dir")
    check_output_folder(config["results_dir"], "results_dir")
    PLAN = plan(config, observe(config))
except SpectropolError as err:
    refuse(str(err))
for _warning in PLAN.warnings:
    logger.warning(_warning)

WORK = PLAN.work
RESULTS = PLAN.results
LOGS = config.get("logs_dir") or "logs"
# The configuration as given (what the report's Provenance page shows; a change reruns that page).
CONFIG = {key: value for key, value in config.items() if key != "run"}
# Who made this run's products: the workflow's commit, the configuration's digest and, in a survey,
# the sheet's and the field's name. Every product records it (io.stores.provenance), through the
# config the scripts see; it is not a param, so that a new commit reruns only what its code changes.
config["run"] = run_identity(CONFIG, workflow.basedir, config.get("run"))
# In a survey, the field this is: the report files its figures under it (None: one observation).
FIELD = config["run"].get("field")
# The cube every later stage reads: gathered from the channel images, or made from input.cubes.
CUBE = f"{RESULTS}/cube/cube.zarr"
# The rules declare the cube by its root metadata file, which every write of the cube rewrites: a
# directory() output that is updated in place must be update(), which Snakemake copies whole before
# each job (1 GB and 3.8 s at 256 channels of 512^2, 17 GB at 4,096), where the cube stage rewrites
# only the changed planes. An update cut short leaves the store marked (io.stores.UPDATING), so that
# nothing reads it until the rule has run again.
CUBE_METADATA = f"{CUBE}/zarr.json"
CUBE_QA = f"{RESULTS}/qa/cube.json"
SOFTWARE_VERSIONS = software_versions()
PRIMARY_BEAM = f"{RESULTS}/catalogue/primary_beam.fits"


wildcard_constraints:
    block=r"\d+(-\d+)?",
    ms_id=r"ms\d{3}",


def code(script):
    """The digest of the code ``script`` runs (planning.code): a rule's param, so that a change to
    its stage's code reruns its jobs, and nothing else does."""
    return rule_code_digest(workflow.basedir, script)


def resource_path(path):
    """A path from the config: as given if it exists, else relative to the workflow's folder."""
    return path if Path(path).exists() else str(Path(workflow.basedir) / path)


# -- the input MSs --------------------------------------------------------------------------------
# With fingerprints (the default for given MSs), jobs reach each MS through its fingerprint job's
# record: its content, not its file times, decides what reruns (rules/inspect.smk).


def input_spws(ms_index):
    """The spectral windows of input ``ms_index`` the plan images."""
    return sorted({c.spw for c in PLAN.channels if c.ms_index == ms_index})


def ms_of(wildcards):
    return PLAN.inputs[PLAN.ms_index(wildcards.ms_id)]


def storage_of(wildcards):
    """The storage signature of the MS (a stat per file): when it changes, its fingerprints are remade."""
    return storage_signature(ms_of(wildcards))


def fingerprint_record(ms_id):
    return f"{WORK}/ms/{ms_id}/fingerprints.json"


def ms_inputs(indices):
    """The MSs themselves, for jobs that read them where file times decide (the demo, or
    fingerprints off); none when fingerprints decide."""
    if PLAN.demo:
        return [rules.simulate_ms.output.ms]
    return [] if PLAN.fingerprint else [PLAN.inputs[k] for k in indices]


def fingerprint_inputs(indices):
    """The fingerprint records of the MSs, for jobs that reach them through those. Declared
    ancient(): a record's time never reruns a job, the channels' hashes (params) do; ancient also
    while a record is being remade, so that Snakemake does not first assume every job downstream
    must rerun."""
    if not PLAN.fingerprint:
        return []
    return [checkpoints.fingerprint_ms.get(ms_id=PLAN.ms_id(k)).output.record for k in indices]


@lru_cache(maxsize=64)
def _fingerprints(record, mtime_ns):
    return read_fingerprints(record)[1]


def fingerprints(ms_index):
    """The fingerprints of an MS's channels, once its fingerprint job has run (or was current). An
    input with nothing unflagged stops the workflow here, before any split or image job."""
    record = checkpoints.fingerprint_ms.get(ms_id=PLAN.ms_id(ms_index)).output.record
    result = _fingerprints(record, Path(record).stat().st_mtime_ns)
    if result.flagged_everywhere() and all_flagged():
        nchan = sum(len(c) for c in result.channels.values())
        refuse(f"{PLAN.inputs[ms_index]}: every one of its {nchan} channels is flagged or has no positive weight: "
               "nothing to image")
    return result


def all_flagged():
    """Whether no input has an unflagged visibility (reads every record: only asked when one has none)."""
    for k in range(len(PLAN.inputs)):
        record = checkpoints.fingerprint_ms.get(ms_id=PLAN.ms_id(k)).output.record
        if not _fingerprints(record, Path(record).stat().st_mtime_ns).flagged_everywhere():
            return False
    return True


def layouts(wildcards):
    """Rows and selection of every MS: a change re-inspects them and so reruns everything."""
    return [fingerprints(k).layout for k in range(len(PLAN.inputs))] if PLAN.fingerprint else None


# -- channels and blocks --------------------------------------------------------------------------


def block_ms_index(wildcards):
    return PLAN.block_sources[wildcards.block][0]


def block_ms_inputs(wildcards):
    return ms_inputs([block_ms_index(wildcards)])


def block_fingerprint_inputs(wildcards):
    return fingerprint_inputs([block_ms_index(wildcards)])


def block_channels(wildcards):
    return PLAN.blocks[wildcards.block]


def block_source(wildcards):
    """(MS index, spw, the block's channels in that window) of a block."""
    ms_index, spw = PLAN.block_sources[wildcards.block]
    return {"ms_index": ms_index, "spw": spw, "spw_channels": PLAN.block_spw_channels(wildcards.block)}


def block_fingerprints(wildcards):
    """The content of the block's channels: a change to any reruns the block (params trigger)."""
    if not PLAN.fingerprint:
        return None
    ms_index, spw = PLAN.block_sources[wildcards.block]
    hashes = fingerprints(ms_index).channels[spw]
    return [hashes[c] for c in PLAN.block_spw_channels(wildcards.block)]


def block_settings(wildcards):
    """Imaging and CLEAN settings of each channel of the block, overrides applied."""
    return [s.to_dict() for s in PLAN.block_settings(wildcards.block)]


def channel_sources():
    """(MS index, spw, channel there) of every output channel, for the cube."""
    return [[c.ms_index, c.spw, c.spw_channel] for c in PLAN.channels]


def polarisation_products():
    """Targets of the stages that need Stokes Q and U (none for XX/YY-only data)."""
    if not PLAN.polarisation:
        return []
    return [rules.export_moment_fits.output, rules.faraday_depth.output,
            rules.export_faraday_fits.output, rules.catalogue.output, rules.report_field.output,
            rules.report_sources.output, rules.report_catalogue.output]


def primary_beam_inputs():
    """The catalogue's beam FITS: the user's where catalogue.primary_beam is fits, the primary_beam
    rule's for everybeam and katbeam; a new beam reruns the catalogue."""
    model, path = PLAN.catalogue.primary_beam, PLAN.catalogue.primary_beam_fits
    if model == "fits" and path:
        return {"beam": resource_path(path)}
    return {"beam": PRIMARY_BEAM} if model in ("everybeam", "katbeam") else {}


def qa_documents():
    """Every QA document of the run, by stage: the qa_summary rule aggregates them."""
    documents = {
        "split": expand(f"{RESULTS}/qa/split/{{block}}", block=PLAN.blocks),
        "image": expand(f"{RESULTS}/qa/image/{{block}}", block=PLAN.blocks),
        "cube": CUBE_QA,
    }
    if PLAN.polarisation:
        documents |= {"moments": rules.faraday_depth.output.moments_qa, "faraday_depth": rules.faraday_depth.output.qa,
                      "catalogue": rules.catalogue.output.qa}
    return documents
