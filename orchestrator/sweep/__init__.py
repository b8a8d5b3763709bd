"""Defining and running a sweep: spec, grid, preflight, Tune, the trainable, Ray Jobs, storage."""
