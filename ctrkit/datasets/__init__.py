"""Bundled and synthetic data sets for ctrkit.

Pure numpy / pandas: importing this package never imports torch.

* :mod:`~ctrkit.datasets.census`: UCI Census-Income (KDD) with the MMoE paper's task groups.
* :mod:`~ctrkit.datasets.samples`: small samples of Criteo, Avazu, MovieLens, ByteRec, Census, Ali-CCP and
  AliExpress.
* :mod:`~ctrkit.datasets.synthetic`: the MMoE synthetic regression tasks and Criteo-like CTR/CVR data.
* :mod:`~ctrkit.datasets.movielens`: MovieLens 100K ratings and per-user sequences.
* :mod:`~ctrkit.datasets.adlog`: a synthetic ad log (requests, candidate ads, bids) with known click and
  conversion probabilities.
"""

from .adlog import AD_LOG_DENSE, AD_LOG_SPARSE, AdLog, make_ad_log
from .census import (
    CENSUS_CATEGORICAL,
    CENSUS_COLUMNS,
    CENSUS_CONTINUOUS,
    CENSUS_EDUCATION_COLLEGE,
    CENSUS_LABELS,
    census_feature_types,
    load_census_income,
    read_census_file,
    split_indices,
    train_val_test_split,
)
from .movielens import ML100K_GENRES, load_movielens_100k, load_movielens_sequences
from .samples import BYTEREC_COLUMNS, SAMPLE_LABELS, SAMPLE_NAMES, load_sample
from .synthetic import (
    default_vocab_sizes,
    iter_criteo_like,
    label_correlation,
    make_criteo_like,
    make_mmoe_synthetic,
)

__all__ = [
    # census
    "CENSUS_COLUMNS",
    "CENSUS_CONTINUOUS",
    "CENSUS_CATEGORICAL",
    "CENSUS_EDUCATION_COLLEGE",
    "CENSUS_LABELS",
    "load_census_income",
    "read_census_file",
    "census_feature_types",
    "split_indices",
    "train_val_test_split",
    # samples
    "SAMPLE_NAMES",
    "SAMPLE_LABELS",
    "BYTEREC_COLUMNS",
    "load_sample",
    # synthetic
    "make_mmoe_synthetic",
    "label_correlation",
    "make_criteo_like",
    "iter_criteo_like",
    "default_vocab_sizes",
    # ad log
    "AdLog",
    "make_ad_log",
    "AD_LOG_SPARSE",
    "AD_LOG_DENSE",
    # movielens
    "ML100K_GENRES",
    "load_movielens_100k",
    "load_movielens_sequences",
]
