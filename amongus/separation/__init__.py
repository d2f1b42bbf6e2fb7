"""Pluggable separators: ``load_separator(name_or_path)`` -> ``Separator``."""

from .base import Separator, load_separator, register_separator, registered_separators

__all__ = ["Separator", "load_separator", "register_separator", "registered_separators"]
