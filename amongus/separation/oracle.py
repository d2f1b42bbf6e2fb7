"""The two reference separators: ``oracle`` (the upper bound) and ``passthrough`` (no separation).

Both work at whatever rate they are given (``sample_rate = None``) and need no weights.
"""

from __future__ import annotations

from .base import SeparatorBase, register_separator
from .scale import check_output_scale


class OracleSeparator(SeparatorBase):
    """Returns the reference sources themselves: what a perfect separator would return.

    ``separate(mixture, lengths, references=refs)`` needs ``references [B, S, T]``, e.g. the
    Mixer's ``render_sources`` output; ``S`` must equal ``n_src`` (``n_src=None`` accepts any
    number of references, and ``n_src`` then reports the last call's).
    """

    sample_rate = None

    def __init__(self, *, n_src: int | None = 2, output_scale: str = "none"):
        if n_src is not None and n_src < 1:
            raise ValueError(f"n_src must be positive, got {n_src}")
        self._fixed_n_src = n_src
        self.n_src = n_src if n_src is not None else 0
        self.output_scale = check_output_scale(output_scale)

    @property
    def identity(self) -> str:
        return f"oracle:scale={self.output_scale}"

    def _separate(self, mixture, lengths, references):
        if references is None:
            raise ValueError(
                "the oracle separator needs references=[B, S, T] (the clean sources of each "
                "mixture, e.g. amongus.mix.render.render_sources)"
            )
        if self._fixed_n_src is None:
            self.n_src = references.shape[1]
        elif references.shape[1] != self._fixed_n_src:
            raise ValueError(
                f"oracle separator has n_src={self._fixed_n_src} but got "
                f"{references.shape[1]} references; pass n_src={references.shape[1]} or n_src=None"
            )
        return references.clone()


class PassthroughSeparator(SeparatorBase):
    """Copies the mixture into each of ``n_src`` streams: the no-separation baseline."""

    sample_rate = None

    def __init__(self, *, n_src: int = 2, output_scale: str = "none"):
        if n_src < 1:
            raise ValueError(f"n_src must be positive, got {n_src}")
        self.n_src = int(n_src)
        self.output_scale = check_output_scale(output_scale)

    @property
    def identity(self) -> str:
        return f"passthrough:n_src={self.n_src}:scale={self.output_scale}"

    def _separate(self, mixture, lengths, references):
        return mixture[:, None, :].expand(-1, self.n_src, -1).clone()


@register_separator("oracle")
def _oracle(**options) -> OracleSeparator:
    return OracleSeparator(**options)


@register_separator("passthrough")
def _passthrough(**options) -> PassthroughSeparator:
    return PassthroughSeparator(**options)
