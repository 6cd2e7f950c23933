"""Attribute prediction and grounding (structured joint embedding, attribute selection, grounding)."""
