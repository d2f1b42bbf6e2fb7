"""Builders of tiny, randomly initialised models saved in the real on-disk formats.

Tests, notebooks and benchmarks use them so that no download is needed; they are loaded through
exactly the code paths used for real checkpoints.
"""
