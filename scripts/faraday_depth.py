from spectropol import without_huge_page_advice

without_huge_page_advice()  # before NumPy is imported (spectropol/__init__.py says why)

from spectropol.io.stores import store_of  # noqa: E402
from spectropol.logs import to_file  # noqa: E402
from spectropol.options import (  # noqa: E402
    DaskOptions,
    FaradayProductsOptions,
    MomentsOptions,
    RMCleanOptions,
    RMSynthesisOptions,
)
from spectropol.stages.faraday import faraday_depth, faraday_store_names  # noqa: E402

params = snakemake.params
clean = RMCleanOptions(**params.clean) if params.clean else None
products = FaradayProductsOptions(**params.products)
stores = {name: snakemake.output[name] for name in faraday_store_names(products, clean is not None)}
with to_file(snakemake.log[0], snakemake.config.get("run")):
    faraday_depth(store_of(snakemake.input.cube), stores, snakemake.output.qa, RMSynthesisOptions(**params.synthesis),
                  clean, products, DaskOptions(**params.dask), moments=MomentsOptions(**params.moments),
                  moments_out=snakemake.output.moments, moments_qa=snakemake.output.moments_qa, rule=snakemake.rule)
