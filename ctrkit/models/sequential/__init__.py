"""Sequential (next-item) recommendation: SASRec and FAME, leave-one-out data and full-ranking metrics.

See ``docs/sequential.md``.
"""
from ...metrics.ranking import history_mask, ranking_metrics
from .base import SequentialModel
from .data import EvalSet, SequenceSplit, leave_one_out, pad_left, training_windows
from .fame import FAME
from .sasrec import SASRec

__all__ = ["SequentialModel", "SASRec", "FAME", "EvalSet", "SequenceSplit", "leave_one_out",
           "pad_left", "training_windows", "ranking_metrics", "history_mask"]
