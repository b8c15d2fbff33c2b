"""Preprocessing: turn raw DataFrames (or raw records) into model input and produce the feature columns.

:class:`FeatureEncoder` follows scikit-learn's estimator contract (``__init__`` only stores parameters,
``fit`` returns ``self``, fitted attributes end in ``_``) and works inside an sklearn ``Pipeline``::

    enc = FeatureEncoder(sparse=["user_id", "city"], dense=["age"], varlen={"genres": "|"}).fit(df_train)
    x = enc.transform(df_test)          # dict of int64 / float32 numpy arrays, one per feature
    enc.feature_columns                 # [SparseFeat('user_id', ...), DenseFeat('age'), VarLenSparseFeat(...)]

Id policy (every categorical and var-length column):
    * 0 is padding (only used by var-length lists), 1 is the out-of-vocabulary (OOV) bucket;
    * known values get ids 2 .. vocabulary_size-1, most frequent first;
    * values seen fewer than ``min_freq`` times at fit, and values never seen, map to 1 (never an IndexError);
    * missing values (None, NaN, pd.NA) are a category of their own (``"<NA>"``), learned like any other;
    * values are compared by their string form, with integral floats written as ints, so ``7``, ``7.0``
      and ``"7"`` are the same category (a column read as int at fit and as str at predict still matches);
    * with hashing (``hash_buckets``) a value maps to ``2 + stable_hash(value) % buckets`` (no vocabulary kept).

Dense policy: values are coerced to float (non-numeric strings become NaN); ``+-inf`` are clipped to the
training min / max; NaN is replaced by the training mean of the finite values (0 if the column was all NaN
at fit); then ``scaling`` applies: ``"standard"`` (z-score; a constant column gets scale 1, so no division by
zero), ``"minmax"`` (to [0, 1] on the training range; a constant column maps to 0) or ``None``; the result is
clipped to [-10,000, 10,000] so extreme values (1e308) cannot overflow float32.

Modules: :mod:`~ctrkit.preprocessing.encoder` (``FeatureEncoder``: transform, records, feature columns,
serialisation), :mod:`~ctrkit.preprocessing.fitting` (fit / partial_fit), :mod:`~ctrkit.preprocessing.categorical`
(keys, vocabularies, OOV, hashing), :mod:`~ctrkit.preprocessing.numerical` (dense policy),
:mod:`~ctrkit.preprocessing.sequence` (var-length columns), :mod:`~ctrkit.preprocessing.records` (raw records),
:mod:`~ctrkit.preprocessing.sampling` (negative downsampling).
"""
from .categorical import MISSING, OOV_ID, PAD_ID, category_keys, hash_keys, infer_column_types
from .encoder import EncodedData, FeatureEncoder
from .sampling import NegativeSampler, downsample_negatives, negative_sampling_mask

__all__ = ["FeatureEncoder", "EncodedData", "MISSING", "PAD_ID", "OOV_ID", "category_keys", "hash_keys",
           "infer_column_types", "downsample_negatives", "negative_sampling_mask", "NegativeSampler"]
