"""Defenses and detectors: each module holds one paper's method (causal masking, heat and blur,
feature squeezing, AID, the multi-interpreter detector)."""
