"""Data path: columnar tensors and batch slicing; data sources (in memory or on-disk stores) read in batches.

Modules: :mod:`~ctrkit.data.inputs` (``TensorData`` and conversions), :mod:`~ctrkit.data.source` (the
``DataSource`` interface), :mod:`~ctrkit.data.arrays` (in-memory source), :mod:`~ctrkit.data.hdf5` (the store
format and reader), :mod:`~ctrkit.data.writer` (writing stores), :mod:`~ctrkit.data.readers` (CSV / Parquet
reading), :mod:`~ctrkit.data.convert` (raw file -> store), :mod:`~ctrkit.data.prefetch` (read-ahead),
:mod:`~ctrkit.data.sampling` (negative downsampling of a store).
"""
from .arrays import ArraySource
from .convert import encode_to_store
from .hdf5 import H5Store, open_store
from .inputs import TensorData, num_rows, to_sample_weight, to_targets, to_tensor_data
from .readers import read_table
from .sampling import downsample_store
from .source import DataSource, check_source, is_data_source
from .writer import StoreWriter, write_store

open = open_store  # ctrkit.data.open("train.h5")

__all__ = ["TensorData", "to_tensor_data", "to_targets", "to_sample_weight", "num_rows", "DataSource",
           "H5Store", "StoreWriter", "write_store", "open_store", "open", "encode_to_store", "ArraySource",
           "read_table", "check_source", "is_data_source", "downsample_store"]
