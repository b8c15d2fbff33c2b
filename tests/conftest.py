"""Shared fixtures: real samples, encoded once per session."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from ctrkit import FeatureEncoder
from ctrkit.datasets import load_sample

# One thread: on a small shared machine (CI runs on 2 cores) a contended thread pool makes steps many times slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def byterec() -> pd.DataFrame:
    """ICME byterec sample: two binary tasks `finish` and `like`."""
    return load_sample("byterec")


@pytest.fixture(scope="session")
def byterec_encoded(byterec):
    df = byterec
    sparse = ["uid", "user_city", "item_id", "author_id", "item_city", "channel", "music_id", "device"]
    dense = ["duration_time", "time"]
    enc = FeatureEncoder(sparse=sparse, dense=dense, embedding_dim=4).fit(df)
    y = df[["finish", "like"]].astype("float32")
    return enc, df, y


@pytest.fixture(scope="session")
def movielens() -> pd.DataFrame:
    return load_sample("movielens")


@pytest.fixture(scope="session")
def criteo() -> pd.DataFrame:
    return load_sample("criteo")


from _helpers import constant_logloss  # noqa: E402,F401  (kept importable from here for older test files)


@pytest.fixture(scope="session")
def census_head():
    """The first 4,000 rows of census group 1 as a comparison's prepared data (80/10/10 split)."""
    from ctrkit.compare import prepare_frame_data
    from ctrkit.datasets import census_feature_types, load_census_income
    X, y = load_census_income(group=1)
    df = pd.concat([X, y], axis=1).iloc[:4000]
    sparse, dense = census_feature_types()
    return prepare_frame_data(df, ["income", "marital"], sparse=sparse, dense=dense, name="census[:4000]")
