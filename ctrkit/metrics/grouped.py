"""Grouped AUC (gAUC): the ROC AUC of each group (a user, a query, a page view), averaged with the groups'
impressions as weights, as in Zhou et al. (DIN, 2018) and Zhu et al. (2017).

A group whose rows are all of one class has no AUC; it is skipped, and the share of impressions it held is
reported (:func:`gauc_details`), because a gAUC over few usable groups says little. The computation is
vectorised over groups (one sort, no Python loop), and handles ties (counted as half) and sample weights as
:func:`~ctrkit.metrics.roc_auc` does.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._arrays import _prep

__all__ = ["gauc", "gauc_details", "GroupAUC"]


class GroupAUC(NamedTuple):
    """What :func:`gauc_details` returns."""
    value: float            # the impression-weighted mean of the per-group AUCs (NaN if no group has both classes)
    skipped_share: float    # share of impressions (weighted rows) in groups with one class, left out
    groups: int             # groups seen
    groups_used: int        # groups with both classes


def _codes(groups, n: int) -> np.ndarray:
    g = np.asarray(groups).reshape(-1)
    if g.size != n:
        raise ValueError(f"gauc: got {g.size} group ids for {n} predictions; pass one group id per row "
                         "(e.g. the user_id column).")
    if g.dtype.kind in "iub":
        return np.unique(g, return_inverse=True)[1].reshape(-1)
    if g.dtype.kind == "f" and np.isnan(g).any():
        raise ValueError("gauc: some group ids are NaN; fill them (e.g. with -1) so every row has a group.")
    if g.dtype.kind == "O":  # strings, maybe with gaps (None / NaN) or mixed types: group by the text
        g = g.astype(str)
    return np.unique(g, return_inverse=True)[1].reshape(-1)


def gauc_details(y_true, y_pred, groups, sample_weight=None) -> GroupAUC:
    """gAUC with the share of impressions skipped (groups with one class) and the group counts.

    Example:
        >>> r = gauc_details([1, 0, 1, 0, 1, 1], [.9, .1, .2, .8, .5, .6], ["a", "a", "b", "b", "c", "c"])
        >>> r.value, round(r.skipped_share, 6), r.groups, r.groups_used
        (0.5, 0.333333, 3, 2)
    """
    y, p, w = _prep(y_true, y_pred, sample_weight)
    n = y.size
    code = _codes(groups, n)
    if n == 0:
        return GroupAUC(float("nan"), float("nan"), 0, 0)
    w = np.ones_like(y) if w is None else w
    order = np.lexsort((p, code))              # by group, then by score (ascending)
    y, p, w, code = y[order], p[order], w[order], code[order]
    pos, neg = y * w, (1.0 - y) * w
    new = np.r_[True, (code[1:] != code[:-1]) | (p[1:] != p[:-1])]   # a new block of tied scores in a group
    block = np.cumsum(new) - 1
    pos_b, neg_b = np.bincount(block, pos), np.bincount(block, neg)
    group_b = code[new]
    before = np.cumsum(neg_b) - neg_b          # negative weight in earlier blocks (all groups)
    first = np.r_[True, group_b[1:] != group_b[:-1]]
    start = before[first][np.cumsum(first) - 1]     # ... up to the first block of the block's group
    below = before - start                     # negatives of the same group scored strictly lower
    n_groups = int(code.max()) + 1
    wins = np.bincount(group_b, pos_b * (below + 0.5 * neg_b), minlength=n_groups)
    P = np.bincount(code, pos, minlength=n_groups)
    N = np.bincount(code, neg, minlength=n_groups)
    imp = np.bincount(code, w, minlength=n_groups)
    used = (P > 0) & (N > 0)
    total = float(imp.sum())
    kept = float(imp[used].sum())
    skipped = 1.0 - kept / total if total > 0 else float("nan")
    if not used.any() or kept <= 0:
        return GroupAUC(float("nan"), skipped, n_groups, 0)
    auc = wins[used] / (P[used] * N[used])
    return GroupAUC(float(np.sum(imp[used] * auc) / kept), skipped, n_groups, int(used.sum()))


def gauc(y_true, y_pred, groups, sample_weight=None) -> float:
    """Impression-weighted mean of the per-group ROC AUCs; groups with one class are skipped (their share:
    :func:`gauc_details`). NaN if no group has both classes.

    Args:
        y_true: 0 / 1 labels ``(n,)``.
        y_pred: scores or probabilities ``(n,)``.
        groups: a group id per row ``(n,)`` (ints, strings), e.g. the user id.
        sample_weight: optional weights ``(n,)``: they weight the pairs inside a group's AUC and the group's
            impressions.

    Example:
        >>> gauc([1, 0, 1, 0], [.9, .1, .2, .8], [1, 1, 2, 2])
        0.5
    """
    return gauc_details(y_true, y_pred, groups, sample_weight).value
