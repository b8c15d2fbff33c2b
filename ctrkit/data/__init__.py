"""Data path: columnar tensors and batch slicing; on-disk stores for data larger than memory."""
from .inputs import TensorData, num_rows, to_sample_weight, to_targets, to_tensor_data
from .store import DataSource, H5Store, StoreWriter, encode_to_store, open_store, write_store

open = open_store  # ctrkit.data.open("train.h5")

__all__ = ["TensorData", "to_tensor_data", "to_targets", "to_sample_weight", "num_rows", "DataSource", "H5Store",
           "StoreWriter", "write_store", "open_store", "open", "encode_to_store"]
