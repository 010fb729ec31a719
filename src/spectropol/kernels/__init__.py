"""Algorithms on arrays: Stokes formation, weighting, gridding, beams, CLEAN, RM synthesis and
RM-CLEAN, Faraday moments, source finding and robust statistics. No file I/O, no knowledge of
stages or of the workflow: functions take arrays and plain values and return arrays."""
