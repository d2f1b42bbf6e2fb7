"""The Separator protocol and the separator registry.

Every separator takes ``[B, T]`` mixtures at its own ``sample_rate`` and returns ``[B, n_src, T]``
streams of the same length (Asteroid's layout), with no hidden resampling or normalisation.
Resampling to and from the separator's rate is the pipeline's job (``amongus.audio.resample``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

_REGISTRY: dict[str, Callable[..., Separator]] = {}


@runtime_checkable
class Separator(Protocol):
    """What the pipeline needs from a separator."""

    sample_rate: int
    n_src: int

    def separate(self, mixture, lengths=None, **kwargs):  # pragma: no cover - protocol
        """Shape: ``[B, T] -> [B, n_src, T]``. ``lengths`` ([B], samples) marks padding."""
        ...


def register_separator(name: str) -> Callable[[Callable[..., Separator]], Callable[..., Separator]]:
    """Decorator: make a separator factory loadable as ``load_separator(name, ...)``."""

    def decorator(factory: Callable[..., Separator]) -> Callable[..., Separator]:
        _REGISTRY[name] = factory
        return factory

    return decorator


def registered_separators() -> list[str]:
    _import_builtin_separators()
    return sorted(_REGISTRY)


def _import_builtin_separators() -> None:
    # Importing the adapter modules registers them; they import their heavy libraries lazily.
    from . import convtasnet, oracle, sepformer  # noqa: F401


def load_separator(name_or_path: Any, **options) -> Separator:
    """Build a separator from a registered name, a checkpoint path or hub id, or an instance.

    * a ``Separator`` instance is returned as is;
    * a dict ``{"name": ..., **options}`` is a config;
    * a registered name (``"oracle"``, ``"passthrough"``, ``"sepformer"``, ``"convtasnet"``...);
    * otherwise a local path or hub id, whose format (SpeechBrain ``hyperparams.yaml`` or an
      Asteroid checkpoint) decides the adapter.
    """
    if isinstance(name_or_path, Separator) and not isinstance(name_or_path, (str, dict)):
        return name_or_path
    if isinstance(name_or_path, dict):
        config = dict(name_or_path)
        name = config.pop("name")
        return load_separator(name, **{**config, **options})
    _import_builtin_separators()
    name = str(name_or_path)
    if name in _REGISTRY:
        return _REGISTRY[name](**options)
    from .detect import separator_from_source

    return separator_from_source(name, **options)
