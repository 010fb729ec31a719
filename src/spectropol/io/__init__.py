"""The edges where data enters and leaves: Measurement Sets (reading, fingerprints), Zarr stores
written atomically with provenance, and FITS/WCS headers. Imports kernels at most, never stages."""
