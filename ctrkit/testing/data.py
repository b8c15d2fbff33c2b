"""The data the conformance checks run on: small real samples bundled with ctrkit, encoded once per process.

* ``byterec``: 200 rows of the ICME byterec sample, two binary tasks ``finish`` (38% positive) and ``like``
  (3.5%), eight sparse fields (``uid``, ``user_city``, ``item_id``, ``author_id``, ``item_city``, ``channel``,
  ``music_id``, ``device``) and two dense ones (``duration_time``, ``time``), 4-dim embeddings.
* ``movielens``: 200 ratings (``movie_id`` renamed ``item_id``) with a var-length ``genres`` field, for a
  regression task ``rating`` and binary tasks ``liked`` (rating >= 4) and ``loved`` (rating = 5).

A model whose tags say ``needs_sequence`` (e.g. DIN) also gets a behaviour sequence ``hist_item_id``: the
``item_id`` of up to :data:`MAXLEN` preceding rows, declared as a ``VarLenSparseFeat`` sharing ``item_id``'s
table (so a DIN factory passes ``history_feature_list=["item_id"]``).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_TAGS", "ITEM", "MAXLEN", "SEQUENCE", "TASKS", "TYPES", "CheckData", "load_check_data"]

#: the tasks every factory is called with first (a single-task model keeps the first)
TASKS, TYPES = ("finish", "like"), ("binary", "binary")
ITEM, SEQUENCE, MAXLEN = "item_id", "hist_item_id", 5
BYTEREC_SPARSE = ["uid", "user_city", "item_id", "author_id", "item_city", "channel", "music_id", "device"]
BYTEREC_DENSE = ["duration_time", "time"]

#: the tags a model may declare in its ``conformance_tags`` class attribute, and their defaults
DEFAULT_TAGS: dict[str, bool] = {
    "needs_sparse": False,    # refuses feature columns without a SparseFeat / VarLenSparseFeat (ValueError)
    "needs_sequence": False,  # reads a behaviour sequence ``hist_<item>`` next to ``<item>`` (DIN)
    "binary_only": False,     # refuses a regression task (ValueError); gets two binary tasks instead
    "nested_tasks": False,    # the second task is nested in the first (ESMM: CTCVR within CTR): its output
                              # bias starts at the conditional rate P(task 2 | task 1)
}


@dataclass
class CheckData:
    """The samples (raw frames), the byterec encoder and labels, and the tags read from each factory."""

    byterec: pd.DataFrame
    encoder: Any
    labels: pd.DataFrame
    movielens: pd.DataFrame
    _tags: dict = field(default_factory=dict, repr=False)

    def inputs(self, encoder: Any, df: pd.DataFrame, tags: dict) -> tuple[list, Any]:
        """``(feature columns, model input)`` for ``df`` read through ``encoder``: the raw frame (the encoder
        travels with the columns), or, for a ``needs_sequence`` model with ``item_id`` among the encoded
        features, the encoded frame plus the behaviour sequence."""
        if not tags.get("needs_sequence") or ITEM not in encoder.sparse_columns_:
            return encoder.feature_columns, df   # the list carries the encoder
        return with_sequence(encoder, df)

    def tags(self, factory: Any) -> dict[str, bool]:
        """The model's declared ``conformance_tags`` over :data:`DEFAULT_TAGS`, read from a model the factory
        builds on the byterec columns with the behaviour sequence (cached per factory)."""
        key = id(factory)
        if key not in self._tags:
            cols, _ = with_sequence(self.encoder, self.byterec.iloc[:8])
            try:
                probe = factory(cols, list(TASKS), list(TYPES))
            except Exception:  # noqa: BLE001 - no var-length features? try the plain columns
                probe = factory(self.encoder.feature_columns, list(TASKS), list(TYPES))
            declared = dict(getattr(probe, "conformance_tags", {}) or {})
            self._tags[key] = (factory, {**DEFAULT_TAGS, **declared})
        return dict(self._tags[key][1])

    def movielens_inputs(self, tags: dict) -> tuple[list, Any, pd.DataFrame]:
        """``(columns, input, labels)`` on movielens: sparse ids, a dense age, var-length genres."""
        from ..preprocessing import FeatureEncoder
        ml = self.movielens
        enc = FeatureEncoder(sparse=["user_id", ITEM, "gender", "occupation"], dense=["age"],
                             varlen={"genres": "|"}).fit(ml)
        y = pd.DataFrame({"rating": ml["rating"].astype("float32"),
                          "liked": (ml["rating"] >= 4).astype("float32"),
                          "loved": (ml["rating"] >= 5).astype("float32")})
        if tags.get("needs_sequence"):
            return (*with_sequence(enc, ml), y)
        return enc.feature_columns, ml, y


def with_sequence(encoder: Any, df: pd.DataFrame, item: str = ITEM, maxlen: int = MAXLEN) -> tuple[list, Any]:
    """The encoded frame plus ``hist_<item>``: the ids of ``item`` in the preceding rows (0 to ``maxlen`` of
    them, cycling, so histories are empty, partly padded and full), declared to share ``item``'s table."""
    from ..features import SparseFeat, VarLenSparseFeat
    enc_x = encoder.transform(df)
    ids = enc_x[item]
    hist = np.zeros((len(df), maxlen), dtype=np.int64)
    for i in range(len(df)):
        prev = ids[max(0, i - i % (maxlen + 1)):i][::-1]
        hist[i, :len(prev)] = prev
    x = pd.DataFrame({k: (list(v) if v.ndim > 1 else v) for k, v in enc_x.items()}, index=df.index)
    x["hist_" + item] = list(hist)
    f = next(c for c in encoder.feature_columns if c.name == item)
    cols = list(encoder.feature_columns) + [VarLenSparseFeat(
        SparseFeat("hist_" + item, f.vocabulary_size, f.embedding_dim, embedding_name=item), maxlen=maxlen)]
    return cols, x


@functools.lru_cache(maxsize=1)
def load_check_data() -> CheckData:
    """The bundled samples, loaded and encoded once per process."""
    from ..datasets import load_sample
    from ..preprocessing import FeatureEncoder
    df = load_sample("byterec")
    enc = FeatureEncoder(sparse=BYTEREC_SPARSE, dense=BYTEREC_DENSE, embedding_dim=4).fit(df)
    ml = load_sample("movielens").rename(columns={"movie_id": ITEM})
    return CheckData(df, enc, df[list(TASKS)].astype("float32"), ml)
