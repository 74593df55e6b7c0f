"""Metrics the task packages lack (filled by later methods, e.g. CLIP retrieval)."""
