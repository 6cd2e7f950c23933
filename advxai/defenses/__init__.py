"""Defenses and detectors: each module holds one paper's method (causal masking, heat and blur,
feature squeezing, AID, the multi-interpreter detector, adversarial and interpretation-robust
training), and every one of them speaks the protocol of :mod:`advxai.defenses.base`: a detector is
fitted, calibrated on benign images at a false-positive rate, and scores and flags inputs; a defense
predicts (and, where it cleans its input, purifies). The adaptive attacks against them live beside
them and are registered by name with the other attacks (``get_attack("adaptive_hb", model, ...)``)."""
