"""AASIST's graph back end: graph attention, heterogeneous stacking graph attention, graph pooling.

Source: Jung et al., "AASIST: Audio Anti-Spoofing using Integrated Spectro-Temporal Graph
Attention Networks", ICASSP 2022 (arXiv:2110.01200), Sec. 2 and Fig. 1, and the authors'
reference implementation (clovaai/aasist, ``models/AASIST.py``, MIT), whose behaviour these
modules reproduce (checked to 1e-5 against it in ``tests/test_classifiers_aasist.py``). The
SSL_W2V back end of Tak et al. (Odyssey 2022, arXiv:2202.12233) is the same graph.

The attribute names are those of the published checkpoints (``GAT_layer_S``, ``pos_S``,
``master1``...), so a state dict saved by amongus loads in the reference code and vice versa.

Behaviours of the reference kept on purpose, because the published weights were trained with them:

* both cross-type blocks of a heterogeneous layer's attention use the same weight
  (``att_weight12``), so the attention logits are symmetric;
* a graph pool keeps ``max(int(n_nodes * ratio), 1)`` nodes and scales them by their
  sigmoid scores;
* the first layer of each of the two inference branches starts from its learnt master node
  (``master1``/``master2``), the second from the first's updated master.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _pair_products(nodes: torch.Tensor) -> torch.Tensor:
    """Element-wise products of every pair of nodes. Shape: ``[B, N, D] -> [B, N, N, D]``."""
    return nodes.unsqueeze(2) * nodes.unsqueeze(1)


def _attention_weight(size: int) -> nn.Parameter:
    weight = nn.Parameter(torch.empty(size, 1))
    nn.init.xavier_normal_(weight)
    return weight


def _batch_norm_nodes(norm: nn.BatchNorm1d, nodes: torch.Tensor) -> torch.Tensor:
    """Batch norm over the feature axis, every node of every item a sample. Shape kept."""
    batch, count, dim = nodes.shape
    return norm(nodes.reshape(batch * count, dim)).reshape(batch, count, dim)


class GraphAttentionLayer(nn.Module):
    """Graph attention over a fully connected graph (AASIST's GAT-S / GAT-T).

    Attention logits are ``tanh(W_a (x_i * x_j)) . w`` divided by ``temperature``, normalised
    over ``j``; the output is ``W_1 (sum_j a_ij x_j) + W_2 x_i`` followed by batch norm and SELU.

    Shape: ``[B, N, in_dim] -> [B, N, out_dim]``.
    """

    def __init__(self, in_dim: int, out_dim: int, *, temperature: float = 1.0):
        super().__init__()
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_weight = _attention_weight(out_dim)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.act = nn.SELU()
        self.temperature = float(temperature)

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        nodes = self.input_drop(nodes)
        logits = torch.tanh(self.att_proj(_pair_products(nodes))) @ self.att_weight
        attention = F.softmax(logits.squeeze(-1) / self.temperature, dim=2)
        updated = self.proj_with_att(attention @ nodes) + self.proj_without_att(nodes)
        return self.act(_batch_norm_nodes(self.bn, updated))


class HtrgGraphAttentionLayer(nn.Module):
    """Heterogeneous graph attention with a master node (AASIST's HS-GAL).

    The two node types (temporal first, spectral second) are projected to a common space and
    joined; pairs of nodes of the same type use their own attention weight (``att_weight11``,
    ``att_weight22``), pairs across types share ``att_weight12``. The master node attends to every
    node (``att_projM``, ``att_weightM``) and is updated like a node.

    Shape: ``[B, N1, in_dim], [B, N2, in_dim], master [B or 1, 1, in_dim]`` ->
    ``[B, N1, out_dim], [B, N2, out_dim], master [B, 1, out_dim]``.
    """

    def __init__(self, in_dim: int, out_dim: int, *, temperature: float = 1.0):
        super().__init__()
        self.proj_type1 = nn.Linear(in_dim, in_dim)
        self.proj_type2 = nn.Linear(in_dim, in_dim)
        self.att_proj = nn.Linear(in_dim, out_dim)
        self.att_projM = nn.Linear(in_dim, out_dim)
        self.att_weight11 = _attention_weight(out_dim)
        self.att_weight22 = _attention_weight(out_dim)
        self.att_weight12 = _attention_weight(out_dim)
        self.att_weightM = _attention_weight(out_dim)
        self.proj_with_att = nn.Linear(in_dim, out_dim)
        self.proj_without_att = nn.Linear(in_dim, out_dim)
        self.proj_with_attM = nn.Linear(in_dim, out_dim)
        self.proj_without_attM = nn.Linear(in_dim, out_dim)
        self.bn = nn.BatchNorm1d(out_dim)
        self.input_drop = nn.Dropout(p=0.2)
        self.act = nn.SELU()
        self.temperature = float(temperature)

    def _node_attention(self, nodes: torch.Tensor, n_first: int) -> torch.Tensor:
        hidden = torch.tanh(self.att_proj(_pair_products(nodes)))  # [B, N, N, out]
        same_first = (hidden @ self.att_weight11).squeeze(-1)
        same_second = (hidden @ self.att_weight22).squeeze(-1)
        across = (hidden @ self.att_weight12).squeeze(-1)
        is_first = torch.arange(nodes.shape[1], device=nodes.device) < n_first
        both_first = is_first[:, None] & is_first[None, :]
        both_second = ~is_first[:, None] & ~is_first[None, :]
        logits = torch.where(both_first, same_first, torch.where(both_second, same_second, across))
        return F.softmax(logits / self.temperature, dim=2)

    def _update_master(self, nodes: torch.Tensor, master: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.att_projM(nodes * master))  # [B, N, out]
        attention = F.softmax((hidden @ self.att_weightM) / self.temperature, dim=1)  # [B, N, 1]
        pooled = attention.transpose(1, 2) @ nodes  # [B, 1, in]
        return self.proj_with_attM(pooled) + self.proj_without_attM(master)

    def forward(
        self, first: torch.Tensor, second: torch.Tensor, master: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        n_first, n_second = first.shape[1], second.shape[1]
        nodes = torch.cat([self.proj_type1(first), self.proj_type2(second)], dim=1)
        if master is None:
            master = nodes.mean(dim=1, keepdim=True)
        nodes = self.input_drop(nodes)
        attention = self._node_attention(nodes, n_first)
        master = self._update_master(nodes, master)
        updated = self.proj_with_att(attention @ nodes) + self.proj_without_att(nodes)
        updated = self.act(_batch_norm_nodes(self.bn, updated))
        return updated[:, :n_first], updated[:, n_first : n_first + n_second], master


class GraphPool(nn.Module):
    """Keep the ``ratio`` best-scored nodes, each scaled by its sigmoid score (graph pooling).

    Shape: ``[B, N, D] -> [B, max(int(N * ratio), 1), D]``.
    """

    def __init__(self, ratio: float, in_dim: int, dropout: float = 0.3):
        super().__init__()
        self.ratio = float(ratio)
        self.proj = nn.Linear(in_dim, 1)
        self.drop = nn.Dropout(p=dropout) if dropout > 0 else nn.Identity()

    def forward(self, nodes: torch.Tensor) -> torch.Tensor:
        scores = torch.sigmoid(self.proj(self.drop(nodes)))  # [B, N, 1]
        keep = max(int(nodes.shape[1] * self.ratio), 1)
        index = torch.topk(scores, keep, dim=1).indices.expand(-1, -1, nodes.shape[2])
        return torch.gather(nodes * scores, 1, index)


@dataclass(frozen=True)
class GraphConfig:
    """Sizes of the graph back end (the ``gat_dims``, ``pool_ratios`` and ``temperatures`` of a
    clovaai ``model_config``; ``node_dim`` is the encoder's last channel count, ``filts[-1][-1]``).

    ``temperatures`` are those of GAT-S, GAT-T and the HS-GAL layers; the fourth is unused, as in
    the reference (the published configs carry it).
    """

    node_dim: int
    gat_dims: tuple[int, int]
    pool_ratios: tuple[float, float, float, float]
    temperatures: tuple[float, float, float, float]

    @classmethod
    def build(
        cls,
        node_dim: int,
        gat_dims: Sequence[int],
        pool_ratios: Sequence[float],
        temperatures: Sequence[float],
    ) -> GraphConfig:
        if len(gat_dims) != 2 or len(pool_ratios) != 4 or len(temperatures) != 4:
            raise ValueError(
                "expected gat_dims of 2 sizes, pool_ratios of 4 ratios and 4 temperatures, got "
                f"{list(gat_dims)}, {list(pool_ratios)}, {list(temperatures)}"
            )
        return cls(
            node_dim=int(node_dim),
            gat_dims=(int(gat_dims[0]), int(gat_dims[1])),
            pool_ratios=tuple(float(r) for r in pool_ratios),  # type: ignore[arg-type]
            temperatures=tuple(float(t) for t in temperatures),  # type: ignore[arg-type]
        )


class SpectroTemporalGraphModel(nn.Module):
    """The graph part shared by AASIST and SSL_W2V: spectral and temporal node sets -> logits.

    Subclasses build a front end that produces the two node sets and call :meth:`classify_graph`.
    ``pos_S`` (a learnt positional embedding of the spectral nodes) is added by the subclasses,
    which know how many spectral nodes they make.

    Shape: ``spectral [B, N_S, node_dim], temporal [B, N_T, node_dim]`` ->
    ``logits [B, 2], embedding [B, 5 * gat_dims[1]]``.
    """

    def _build_graph(self, graph: GraphConfig, n_spectral_nodes: int) -> None:
        first, second = graph.gat_dims
        self.pos_S = nn.Parameter(torch.randn(1, n_spectral_nodes, graph.node_dim))
        self.master1 = nn.Parameter(torch.randn(1, 1, first))
        self.master2 = nn.Parameter(torch.randn(1, 1, first))
        self.GAT_layer_S = GraphAttentionLayer(
            graph.node_dim, first, temperature=graph.temperatures[0]
        )
        self.GAT_layer_T = GraphAttentionLayer(
            graph.node_dim, first, temperature=graph.temperatures[1]
        )
        hetero = graph.temperatures[2]
        self.HtrgGAT_layer_ST11 = HtrgGraphAttentionLayer(first, second, temperature=hetero)
        self.HtrgGAT_layer_ST12 = HtrgGraphAttentionLayer(second, second, temperature=hetero)
        self.HtrgGAT_layer_ST21 = HtrgGraphAttentionLayer(first, second, temperature=hetero)
        self.HtrgGAT_layer_ST22 = HtrgGraphAttentionLayer(second, second, temperature=hetero)
        ratios = graph.pool_ratios
        self.pool_S = GraphPool(ratios[0], first)
        self.pool_T = GraphPool(ratios[1], first)
        self.pool_hS1 = GraphPool(ratios[2], second)
        self.pool_hT1 = GraphPool(ratios[2], second)
        self.pool_hS2 = GraphPool(ratios[2], second)
        self.pool_hT2 = GraphPool(ratios[2], second)
        self.drop_way = nn.Dropout(0.2)
        self.drop = nn.Dropout(0.5)
        self.out_layer = nn.Linear(5 * second, 2)

    def _branch(self, temporal, spectral, master, first_layer, second_layer, pool_s, pool_t):
        """One inference branch: HS-GAL, pooling, a second HS-GAL added as a residual."""
        out_t, out_s, master = first_layer(temporal, spectral, master=master)
        out_s, out_t = pool_s(out_s), pool_t(out_t)
        aug_t, aug_s, aug_master = second_layer(out_t, out_s, master=master)
        return (
            self.drop_way(out_t + aug_t),
            self.drop_way(out_s + aug_s),
            self.drop_way(master + aug_master),
        )

    def classify_graph(
        self, spectral: torch.Tensor, temporal: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out_s = self.pool_S(self.GAT_layer_S(spectral))
        out_t = self.pool_T(self.GAT_layer_T(temporal))
        batch = spectral.shape[0]
        t1, s1, m1 = self._branch(
            out_t,
            out_s,
            self.master1.expand(batch, -1, -1),
            self.HtrgGAT_layer_ST11,
            self.HtrgGAT_layer_ST12,
            self.pool_hS1,
            self.pool_hT1,
        )
        t2, s2, m2 = self._branch(
            out_t,
            out_s,
            self.master2.expand(batch, -1, -1),
            self.HtrgGAT_layer_ST21,
            self.HtrgGAT_layer_ST22,
            self.pool_hS2,
            self.pool_hT2,
        )
        # element-wise maximum of the two branches, then a max/mean readout of each node set
        out_t, out_s, master = torch.maximum(t1, t2), torch.maximum(s1, s2), torch.maximum(m1, m2)
        embedding = torch.cat(
            [
                out_t.abs().amax(dim=1),
                out_t.mean(dim=1),
                out_s.abs().amax(dim=1),
                out_s.mean(dim=1),
                master.squeeze(1),
            ],
            dim=1,
        )
        return self.out_layer(self.drop(embedding)), embedding
