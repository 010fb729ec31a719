# Faraday depth: RM synthesis, RM-CLEAN and the peak maps of the cube's Q and U in one pass over
# spatial tiles (whole spectral axis in each), the Faraday moments (rules/moments.smk exports them)
# in the same pass, so that the cube is read once; the FDF spectra of candidate pixels are kept, the
# full FDF cubes only with faraday.save_fdf. FITS exports of the maps (and of the cubes if asked).
from spectropol.stages.faraday import FARADAY_STORES, faraday_fits_names, faraday_store_names


rule faraday_depth:
    input:
        cube=CUBE_METADATA,
    output:
        **{name: directory(f"{RESULTS}/faraday/{FARADAY_STORES[name]}")
           for name in faraday_store_names(PLAN.faraday_products, PLAN.rm_clean is not None)},
        qa=f"{RESULTS}/qa/faraday_depth.json",
        moments=directory(f"{RESULTS}/moments/moments.zarr"),
        moments_qa=f"{RESULTS}/qa/moments.json",
    params:
        code=code("faraday_depth.py"),
        synthesis=as_dict(PLAN.rm_synthesis),
        moments=as_dict(PLAN.moments),
        clean=as_dict(PLAN.rm_clean) if PLAN.rm_clean else None,
        products=as_dict(PLAN.faraday_products),
        dask=as_dict(PLAN.dask),
    log:
        f"{LOGS}/faraday_depth.log",
    benchmark:
        f"{LOGS}/benchmark/faraday_depth.tsv"
    threads: PLAN.dask.threads
    resources:
        runtime=lambda wc, threads: PLAN.faraday_depth_runtime(threads),
        mem_mb=lambda wc, threads: PLAN.faraday_depth_mem_mb(threads),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/faraday_depth.py"


rule export_faraday_fits:
    input:
        peaks=rules.faraday_depth.output.peaks,
        # the full FDF cubes, when kept and asked for as FITS
        dirty=rules.faraday_depth.output.fdf_dirty if PLAN.faraday_fdf_fits else [],
        clean=rules.faraday_depth.output.fdf_clean if PLAN.faraday_fdf_fits and PLAN.rm_clean else [],
    output:
        **PLAN.faraday_fits(faraday_fits_names(PLAN.faraday_products, clean=PLAN.rm_clean is not None,
                                               stokes_i=PLAN.stokes_i)),
    params:
        code=code("export_faraday_fits.py"),
    log:
        f"{LOGS}/export_faraday_fits.log",
    benchmark:
        f"{LOGS}/benchmark/export_faraday_fits.tsv"
    threads: 1
    resources:
        # a function: evaluated only where the Faraday stages run (one channel has no Faraday grid)
        runtime=lambda wc: PLAN.faraday_fits_runtime(),
        mem_mb=PLAN.faraday_fits_mem_mb(),
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/export_faraday_fits.py"
