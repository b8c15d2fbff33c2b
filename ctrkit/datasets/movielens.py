"""MovieLens 100K (GroupLens), bundled in ``data/ml-100k``: ratings joined with users and movies.

This module is pure numpy/pandas (it does not import torch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["ML100K_GENRES", "load_movielens_100k", "load_movielens_sequences"]

ML100K_DIR = Path(__file__).resolve().parent / "data" / "ml-100k"

#: The 19 genre names of ``u.genre``, in flag order.
ML100K_GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def _dir(data_dir: str | Path | None) -> Path:
    d = Path(data_dir) if data_dir is not None else ML100K_DIR
    if not (d / "u.data").exists():
        raise FileNotFoundError(f"MovieLens 100K: no u.data in {d}.")
    return d


def _read_genres(d: Path) -> list[str]:
    g = pd.read_csv(d / "u.genre", sep="|", header=None, names=["genre", "idx"], encoding="latin-1",
                    dtype={"genre": object, "idx": np.int64})
    g = g.dropna().sort_values("idx")
    return [str(x) for x in g["genre"]]


def _read_ratings(d: Path) -> pd.DataFrame:
    return pd.read_csv(
        d / "u.data",
        sep="\t",
        header=None,
        names=["user_id", "item_id", "rating", "timestamp"],
        dtype=np.int64,
    )


def load_movielens_100k(*, data_dir: str | Path | None = None) -> pd.DataFrame:
    """The 100,000 MovieLens-100K ratings joined with user and movie attributes.

    Joins ``u.data`` (tab-separated ``user_id, item_id, rating, timestamp``) with ``u.user``
    (``age, gender, occupation, zip``) and ``u.item`` (latin-1; ``title`` and the 19 genre flags, turned into
    ``genres``: the names from ``u.genre`` whose flag is 1, joined by ``"|"`` in ``u.genre`` order, e.g.
    ``"Animation|Children's|Comedy"``). Rows keep the order of ``u.data``.

    Args:
        data_dir: Folder with the ml-100k files; defaults to the bundled copy.

    Returns:
        A DataFrame with columns ``user_id, item_id, rating, timestamp, age`` (int64), ``gender, occupation,
        zip, title, genres`` (Python strings, object dtype). Ids are the original 1-based ids (943 users,
        1,682 items).

    Example:
        >>> df = load_movielens_100k()
        >>> len(df), df.user_id.nunique(), df.item_id.nunique()
        (100000, 943, 1682)
    """
    d = _dir(data_dir)
    ratings = _read_ratings(d)
    users = pd.read_csv(
        d / "u.user",
        sep="|",
        header=None,
        names=["user_id", "age", "gender", "occupation", "zip"],
        dtype={"user_id": np.int64, "age": np.int64, "gender": object, "occupation": object, "zip": object},
        keep_default_na=False,
    )
    genres = _read_genres(d)
    item_cols = ["item_id", "title", "release_date", "video_release_date", "imdb_url"] + genres
    items = pd.read_csv(
        d / "u.item",
        sep="|",
        header=None,
        names=item_cols,
        encoding="latin-1",
        dtype={"item_id": np.int64, "title": object, **{g: np.int64 for g in genres}},
        usecols=["item_id", "title"] + genres,
        keep_default_na=False,
    )
    flags = items[genres].to_numpy(dtype=bool)
    names = np.array(genres, dtype=object)
    items["genres"] = np.array(["|".join(names[row]) for row in flags], dtype=object)
    items = items[["item_id", "title", "genres"]]
    out = ratings.merge(users, on="user_id", how="left", validate="many_to_one")
    out = out.merge(items, on="item_id", how="left", validate="many_to_one")
    for col in ("gender", "occupation", "zip", "title", "genres"):
        out[col] = out[col].astype(object)
    return out


def load_movielens_sequences(min_len: int = 5, *, data_dir: str | Path | None = None) -> dict:
    """Each user's rated items in time order, for sequential (next-item) recommendation.

    Items are ordered by ``timestamp``; ratings with the same timestamp are ordered by item id. Every rating
    counts as an interaction, whatever its value.

    Args:
        min_len: Users with fewer than ``min_len`` ratings are left out (every ML-100K user has at least 20).
        data_dir: Folder with the ml-100k files; defaults to the bundled copy.

    Returns:
        A dict with

        * ``"sequences"``: dict ``user_id -> np.ndarray`` (int64) of item ids, users in increasing id order;
        * ``"timestamps"``: dict ``user_id -> np.ndarray`` (int64) of the matching timestamps;
        * ``"num_items"``: the largest item id (1682); item ids run from 1, so 0 is free for padding and
            an embedding table needs ``num_items + 1`` rows;
        * ``"num_users"``: the number of users kept.

    Example:
        >>> data = load_movielens_sequences(min_len=5)
        >>> data["num_items"], len(data["sequences"])
        (1682, 943)
    """
    if int(min_len) != min_len or min_len < 0:
        raise ValueError(f"load_movielens_sequences: min_len must be an integer >= 0, got {min_len!r}.")
    ratings = _read_ratings(_dir(data_dir))
    ratings = ratings.sort_values(["user_id", "timestamp", "item_id"], kind="mergesort")
    users = ratings["user_id"].to_numpy()
    items = ratings["item_id"].to_numpy()
    times = ratings["timestamp"].to_numpy()
    uniq, starts, counts = np.unique(users, return_index=True, return_counts=True)
    sequences: dict[int, np.ndarray] = {}
    timestamps: dict[int, np.ndarray] = {}
    for u, s, c in zip(uniq.tolist(), starts.tolist(), counts.tolist()):
        if c >= min_len:
            sequences[u] = items[s:s + c].copy()
            timestamps[u] = times[s:s + c].copy()
    return {
        "sequences": sequences,
        "timestamps": timestamps,
        "num_items": int(ratings["item_id"].max()),
        "num_users": len(sequences),
    }
