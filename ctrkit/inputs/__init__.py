"""``deepctr_torch.inputs`` under ctrkit: the feature columns and ``get_feature_names``.

A thin re-export of :mod:`ctrkit.features` so that ``from deepctr_torch.inputs import ...`` runs with only
the package name changed. New code should import from ``ctrkit`` or ``ctrkit.features``.
"""
from ..features import DEFAULT_GROUP_NAME, DenseFeat, SparseFeat, VarLenSparseFeat, get_feature_names

__all__ = ["SparseFeat", "DenseFeat", "VarLenSparseFeat", "get_feature_names", "DEFAULT_GROUP_NAME"]
