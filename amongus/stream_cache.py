"""``amongus.stream_cache.StreamCache``: separated streams cached on disk (see
:mod:`amongus.training.stream_cache`, where it lives)."""

from .training.stream_cache import CacheEntry, StreamCache

__all__ = ["CacheEntry", "StreamCache"]
