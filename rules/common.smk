# Bindings of the Plan (spectropol.planning) to Snakemake: input functions, params and resources.
# Nothing here reads data; the plan is computed once, when the workflow is read.
from functools import lru_cache
from pathlib import Path

from spectropol.errors import SpectropolError
from spectropol.io.fingerprint import read_fingerprints, storage_signature
from spectropol.options import as_dict
from spectropol.planning import check_output_folder, observe, plan

try:
    check_output_folder(config["work_dir"], "work_dir")
    check_output_folder(config["results_dir"], "results_dir")
    PLAN = plan(config, observe(config))
except SpectropolError as err:
    raise WorkflowError(str(err)) from None
for _warning in PLAN.warnings:
    logger.warning(_warning)

WORK = PLAN.work
RESULTS = PLAN.results


wildcard_constraints:
    block=r"\d+(-\d+)?",


def resource_path(path):
    """A path from the config: as given if it exists, else relative to the workflow's folder."""
    return path if Path(path).exists() else str(Path(workflow.basedir) / path)


# -- the input MS ---------------------------------------------------------------------------------
# With fingerprints (the default for a given MS), jobs reach the MS through the fingerprint job's
# record: its content, not its file times, decides what reruns (rules/inspect.smk).


def fingerprint_record():
    return f"{WORK}/ms/fingerprints.json"


def ms_input(wildcards):
    """The MS, for jobs that read it where file times decide: the demo, or fingerprints off."""
    if PLAN.ms is None:
        return rules.simulate_ms.output.ms
    return [] if PLAN.fingerprint else PLAN.ms


def fingerprint_input(wildcards):
    """The fingerprint record, for jobs that reach the MS through it. Declared ancient(): its
    time never reruns a job, the channels' hashes (params) do; ancient also while the record is
    being remade, so that Snakemake does not first assume every job downstream must rerun."""
    return checkpoints.fingerprint_ms.get().output.record if PLAN.fingerprint else []


@lru_cache(maxsize=4)
def _fingerprints(record, mtime_ns):
    return read_fingerprints(record)[1]


def fingerprints():
    """The fingerprints of the MS's channels, once the fingerprint job has run (or was current)."""
    record = checkpoints.fingerprint_ms.get().output.record
    return _fingerprints(record, Path(record).stat().st_mtime_ns)


def layout_fingerprint(wildcards):
    """Rows and selection of the MS: a change re-inspects it and so reruns everything."""
    return fingerprints().layout if PLAN.fingerprint else None


def block_fingerprints(wildcards):
    """The content of the block's channels: a change to any reruns the block (params trigger)."""
    if not PLAN.fingerprint:
        return None
    channels = fingerprints().channels
    return [channels[c] for c in PLAN.blocks[wildcards.block]]


# -- channels -------------------------------------------------------------------------------------


def block_channels(wildcards):
    return PLAN.blocks[wildcards.block]


def block_settings(wildcards):
    """Imaging and CLEAN settings of each channel of the block, overrides applied."""
    return [s.to_dict() for s in PLAN.block_settings(wildcards.block)]


def polarisation_products():
    """Targets of the stages that need Stokes Q and U (none for XX/YY-only data)."""
    if not PLAN.polarisation:
        return []
    return [rules.faraday_moments.output, rules.export_moment_fits.output, rules.faraday_peaks.output,
            rules.export_faraday_fits.output, rules.catalogue.output, rules.report_figures.output]


def qa_documents():
    """Every QA document of the run, by stage: the qa_summary rule aggregates them."""
    documents = {
        "split": expand(f"{RESULTS}/qa/split/{{block}}", block=PLAN.blocks),
        "image": expand(f"{RESULTS}/qa/image/{{block}}", block=PLAN.blocks),
        "cube": rules.gather_cube.output.qa,
    }
    if PLAN.polarisation:
        documents |= {"moments": rules.faraday_moments.output.qa, "rm_synthesis": rules.rm_synthesis.output.qa,
                      "faraday_peaks": rules.faraday_peaks.output.qa, "catalogue": rules.catalogue.output.qa}
        if PLAN.rm_clean:
            documents["rm_clean"] = rules.rm_clean.output.qa
    return documents
