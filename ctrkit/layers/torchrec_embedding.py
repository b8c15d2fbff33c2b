"""The embedding tables held by TorchRec, behind the :class:`~ctrkit.layers.EmbeddingLayer` interface.

A model built with ``embedding_backend="torchrec"`` gets this layer instead of the native one: the same feature
columns, the same output (one ``(B, F_g, D_g)`` tensor per dimension group), but the tables live in one TorchRec
``EmbeddingBagCollection`` (one table per ``embedding_name``; fixed-length sparse features are bags of one id,
var-length features are pooled by TorchRec with their ``combiner``). ``compile`` hands the collection to
TorchRec's ``DistributedModelParallel`` (:mod:`ctrkit.training.sharding`), which plans where each table lives
(table-wise, row-wise, column-wise) and creates only this process's shards: until then the tables are not
allocated (they sit on PyTorch's ``meta`` device), so a vocabulary larger than one process's memory never exists
whole anywhere.

Needs the optional extra (``bash scripts/setup.sh --torchrec``, see ``docs/sharding.md``); importing this module
does not import TorchRec, building the layer does.
"""
from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..features import check_feature_columns
from .embedding import EmbeddingLayer
from .numeric import NumericEmbeddings

__all__ = ["TorchRecEmbeddingLayer", "import_torchrec", "EMBEDDING_BACKENDS"]

EMBEDDING_BACKENDS = ("native", "torchrec")
_INSTALL = ("Install the optional extra: `bash scripts/setup.sh --torchrec` (it pins torchrec==1.9.2 with "
            "fbgemm-gpu-cpu==1.8.0, the pair that loads with torch 2.13 on the CPU; see docs/sharding.md).")


def import_torchrec(where: str) -> Any:
    """``torchrec``, or an ImportError saying how to install it."""
    try:
        import torchrec
    except Exception as e:  # ImportError, or fbgemm's OSError when its build does not match torch
        raise ImportError(f"{where}: embedding_backend='torchrec' needs TorchRec, which does not import here "
                          f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}). {_INSTALL}") from e
    return torchrec


class TorchRecEmbeddingLayer(EmbeddingLayer):
    """All id tables of a model in one TorchRec ``EmbeddingBagCollection``; the interface of
    :class:`~ctrkit.layers.EmbeddingLayer` (``forward``, ``flat``, ``group_dims``, ``output_dim``, ...).

    Args:
        feature_columns: the model's feature columns.
        init_std: standard deviation of the normal initialisation of each table (applied by TorchRec to each
            shard when the tables are created).

    The collection is ``self.ebc``; until :func:`ctrkit.training.sharding.shard_tables` (called by ``compile``)
    replaces it with its sharded version, its tables are on the ``meta`` device and a forward pass raises.
    Models that read the tables directly (DIN / DIEN's attention over the behaviour sequence, the sequential
    recommenders' item table, the linear parts of wide models keep their own native tables) are not served by
    this layer; their tables stay native.

    Example:
        >>> from ctrkit import SparseFeat
        >>> emb = TorchRecEmbeddingLayer([SparseFeat("a", 10, 4), SparseFeat("b", 5, 4)])  # doctest: +SKIP
        >>> emb.output_dim                                                                   # doctest: +SKIP
        8
    """

    backend = "torchrec"
    foldable = False   # the folded input projection reads native tables; TorchRec's are opaque to it

    def __init__(self, feature_columns: Sequence, *, init_std: float = 0.01, sparse: bool = False) -> None:
        if sparse:
            raise ValueError("TorchRecEmbeddingLayer: sparse=True does not apply to embedding_backend='torchrec': "
                             "TorchRec's fused kernels update only the looked-up rows, without a gradient tensor. "
                             "Build the model with sparse=False.")
        tr = import_torchrec("TorchRecEmbeddingLayer")
        cols = check_feature_columns(feature_columns)
        with torch.device("meta"):   # the layout (groups, fields, offsets) of the native layer, no tables
            super().__init__(cols, init_std=init_std, sparse=False)
        del self._modules["weights"]
        for gi in range(len(self.group_dims)):
            delattr(self, f"_cols_{gi}")
            delattr(self, f"_offs_{gi}")
        numeric = NumericEmbeddings(cols, init_std=init_std)
        self.numeric = numeric if numeric.dims else None
        pooling: dict[str, str] = {}
        features: dict[str, list[str]] = {}
        rows: dict[str, int] = {}
        for sf in self.sparse_features:
            table = str(sf.embedding_name)
            features.setdefault(table, []).append(sf.name)
            rows[table] = max(rows.get(table, 0), int(sf.vocabulary_size))
        for vf in self.varlen_features:
            table = str(vf.embedding_name)
            if vf.combiner not in ("mean", "sum"):
                raise ValueError(f"TorchRecEmbeddingLayer: var-length feature {vf.name!r} has combiner="
                                 f"{vf.combiner!r}; TorchRec pools bags by 'mean' or 'sum' only. Use one of those, "
                                 "or the native backend.")
            had = pooling.setdefault(table, vf.combiner)
            if had != vf.combiner:
                raise ValueError(f"TorchRecEmbeddingLayer: table {table!r} is shared by var-length features pooled "
                                 f"with {had!r} and {vf.combiner!r}; TorchRec pools per table. Give them one "
                                 "combiner, or separate embedding_names.")
            features.setdefault(table, []).append(vf.name)
            rows[table] = max(rows.get(table, 0), int(vf.vocabulary_size))
        init = functools.partial(nn.init.normal_, mean=0.0, std=self.init_std)
        pt = tr.PoolingType
        self.table_configs = [tr.EmbeddingBagConfig(
            name=name, embedding_dim=self.table_dims[name], num_embeddings=rows[name], feature_names=feats,
            pooling=pt.MEAN if pooling.get(name) == "mean" else pt.SUM, init_fn=init)
            for name, feats in features.items()]
        #: the TorchRec collection (its sharded version once ``compile`` has sharded the model)
        self.ebc = tr.EmbeddingBagCollection(tables=self.table_configs, device=torch.device("meta"))
        self._keys = [f.name for f in self.sparse_features] + [f.name for f in self.varlen_features]
        self._group_sparse = [[self.sparse_features[j].name for j in c] for c in self._group_cols]
        #: set by the sharding: pad every rank's batch to the largest (TorchRec's row-wise exchange needs it)
        self.equal_batches = False

    @property
    def weights(self):  # type: ignore[override]
        raise RuntimeError("this model reads its embedding tables directly (EmbeddingLayer.weights), which the "
                             "torchrec backend does not expose; build it with embedding_backend='native'.")

    def reset_parameters(self) -> None:
        """The tables are initialised by TorchRec when they are created (``init_std``); the numeric fields here."""
        numeric = self.__dict__.get("_modules", {}).get("numeric")
        if numeric is not None:
            numeric.reset_parameters()

    @property
    def materialized(self) -> bool:
        """Whether the tables exist (after sharding) rather than sitting on the ``meta`` device."""
        return not any(p.is_meta for p in self.ebc.parameters())

    def _apply(self, fn, recurse=True):  # type: ignore[override]
        if self.materialized:
            return super()._apply(fn, recurse)
        ebc = self._modules.pop("ebc")   # meta tables cannot be moved: ``model.to(device)`` skips them
        try:
            return super()._apply(fn, recurse)
        finally:
            self._modules["ebc"] = ebc

    def table_rows(self) -> dict[str, int]:
        """Rows of each table, by ``embedding_name``."""
        return {c.name: int(c.num_embeddings) for c in self.table_configs}

    # ------------------------------------------------------------------ lookups
    def _kjt(self, batch) -> tuple[Any, int]:
        """The batch's ids as one KeyedJaggedTensor (keys: sparse features, then var-length ones)."""
        from torchrec import KeyedJaggedTensor
        sp = batch.sparse
        n = int(sp.shape[0]) if sp is not None and sp.dim() == 2 else len(batch)
        values: list[torch.Tensor] = []
        lengths: list[torch.Tensor] = []
        if self.sparse_features:
            values.append(sp.t().reshape(-1))
            lengths.append(torch.ones(len(self.sparse_features), n, dtype=torch.long, device=sp.device))
        for f in self.varlen_features:
            ids = batch.varlen[f.name]
            length = batch.lengths.get(f.name)
            if length is not None:
                mask = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) < length.unsqueeze(1)
            else:
                mask = ids != 0
            values.append(ids[mask])
            lengths.append(mask.sum(dim=1).unsqueeze(0))
        lens = torch.cat(lengths) if len(lengths) > 1 else lengths[0]
        stride = n
        if self.equal_batches:
            import torch.distributed as dist
            top = torch.tensor([n], dtype=torch.int64, device=lens.device)
            dist.all_reduce(top, op=dist.ReduceOp.MAX)
            stride = int(top.item())
            if stride > n:   # empty bags for the padding rows: the ids stay as they are
                lens = F.pad(lens, (0, stride - n))
        vals = torch.cat(values) if len(values) > 1 else values[0]
        return KeyedJaggedTensor(keys=self._keys, values=vals.long(), lengths=lens.reshape(-1).long(),
                                 stride=stride), n

    def _id_groups(self, batch) -> list[list[torch.Tensor]]:
        out: list[list[torch.Tensor]] = [[] for _ in self.group_dims]
        if not self._keys:
            return out
        if not self.materialized:
            raise RuntimeError("TorchRecEmbeddingLayer: the tables are not created yet. A model built with "
                               "embedding_backend='torchrec' creates them (sharded) in model.compile(...); compile "
                               "before fit / evaluate / predict.")
        kjt, n = self._kjt(batch)
        if torch.is_inference_mode_enabled():   # fbgemm's CPU lookups are registered for autograd only
            with torch.inference_mode(False), torch.no_grad():
                pooled = self.ebc(kjt).to_dict()
        else:
            pooled = self.ebc(kjt).to_dict()
        for gi, d in enumerate(self.group_dims):
            names = self._group_sparse[gi]
            if names:
                out[gi].append(torch.stack([pooled[k][:n] for k in names], dim=1))
            for f in self.varlen_features:
                if f.embedding_dim == d:
                    out[gi].append(pooled[f.name][:n].unsqueeze(1))
        return out
