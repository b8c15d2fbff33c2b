"""Data path: columnar tensors and batch slicing."""
from .inputs import TensorData, num_rows, to_sample_weight, to_targets, to_tensor_data

__all__ = ["TensorData", "to_tensor_data", "to_targets", "to_sample_weight", "num_rows"]
