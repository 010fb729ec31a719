# Primary beam: the telescope's own beam model over the field, for the catalogue's correction.


rule primary_beam:
    """The telescope's beam model (EveryBeam from the MS's stations, or katbeam) over the field, as
    a FITS cube the catalogue corrects each source with."""
    input:
        cube=CUBE_METADATA,
        ms=ms_inputs(range(len(PLAN.inputs))) if PLAN.cubes is None else [],
        fingerprints=ancient(lambda wc: fingerprint_inputs(range(len(PLAN.inputs))) if PLAN.cubes is None else []),
    output:
        beam=PRIMARY_BEAM,
    params:
        code=code("primary_beam.py"),
        model=PLAN.catalogue.primary_beam,
        ms=list(PLAN.inputs) if PLAN.cubes is None else [],
    log:
        f"{LOGS}/primary_beam.log",
    benchmark:
        f"{LOGS}/benchmark/primary_beam.tsv"
    threads: 1
    resources:
        runtime=15,
        mem_mb=1000,
    conda:
        "../envs/spectropol.yaml"
    script:
        "../scripts/primary_beam.py"
