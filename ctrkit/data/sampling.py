"""Negative downsampling of an on-disk store: a new store with every positive of a task and a seeded share of
its negatives, written chunk by chunk (never the whole store in memory).

The rows kept are those :func:`ctrkit.preprocessing.downsample_negatives` keeps for the same labels, rate and
seed (one draw per row, in row order).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..preprocessing.sampling import NegativeSampler
from .hdf5 import open_store
from .writer import StoreWriter

__all__ = ["downsample_store"]


def downsample_store(source: Any, path: str, task: str, rate: float, seed: int = 0,
                     chunk_rows: int = 65536) -> str:
    """Write to ``path`` the rows of the store ``source`` (a path or an open store) with every positive of
    ``task`` and a seeded share ``rate`` of its negatives; returns ``path``.

    The new store has the same feature columns, encoder, tasks and weights. Train on it, then record the rate with
    ``model.set_negative_sampling({task: rate})``.

    Example:
        >>> import tempfile, os, pandas as pd
        >>> from ctrkit import FeatureEncoder
        >>> from ctrkit.data import write_store
        >>> df = pd.DataFrame({"ad": ["a", "b"] * 500, "click": [1] + [0] * 999})
        >>> enc = FeatureEncoder(sparse=["ad"]).fit(df)
        >>> d = tempfile.mkdtemp()
        >>> _ = write_store(os.path.join(d, "full.h5"), df, ["click"], enc.feature_columns)
        >>> out = downsample_store(os.path.join(d, "full.h5"), os.path.join(d, "neg10.h5"), "click", 0.1, seed=1)
        >>> s = open_store(out)
        >>> int(s.labels().sum()), 60 < len(s) < 140
        (1, True)
    """
    store = open_store(source) if isinstance(source, str) else source
    if task not in store.task_names:
        raise ValueError(f"downsample_store: the store has no task {task!r}; its tasks are {store.task_names}.")
    j = store.task_names.index(task)
    sampler = NegativeSampler(rate, seed)
    writer = StoreWriter(path, store.feature_columns, store.task_names, getattr(store, "task_types", None),
                         encoder=getattr(store, "encoder", None))
    try:
        for xb, yb, wb in store.iter_range(0, len(store), chunk_rows):
            keep = sampler.mask(yb[:, j].numpy())
            if not keep.any():
                continue
            idx = torch.from_numpy(np.flatnonzero(keep))
            writer.append(xb.take(idx), yb[idx].numpy(), None if wb is None else wb[idx].numpy())
        return writer.close()
    except BaseException:
        writer.abort()
        raise
