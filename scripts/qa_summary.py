import logging

from spectropol.logs import to_file
from spectropol.qa_aggregate import aggregate_documents

with to_file(snakemake.log[0]):
    summary = aggregate_documents(list(snakemake.input), snakemake.output.summary, snakemake.output.plot,
                                  k=snakemake.params.k)
    logging.getLogger("spectropol.qa").info("%d channels, %d outliers, %d diverged cleans", summary["channels"],
                                            len(summary["outliers"]), len(summary["diverged_cleans"]))
