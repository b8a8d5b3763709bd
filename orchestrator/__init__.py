"""Ray orchestration of AttnMel sweeps (the only package that imports Ray)."""
