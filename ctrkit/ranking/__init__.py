"""From predicted probabilities to an auction: eCPM scoring, objective fusion and an offline auction replay.

Pure numpy / pandas: importing this package never imports torch, and it never imports the models (an example
or a script wires a model's predictions to it).

* :mod:`~ctrkit.ranking.scoring`: :func:`ecpm` (CPC: bid x pCTR; oCPA: bid x pCTR x pCVR), :func:`fuse_scores`
  (weighted sum or product of objectives), :func:`smoothed_rate` (a per-key rate baseline).
* :mod:`~ctrkit.ranking.replay`: :func:`replay_auction` (first or second price, top-k slots, reserve,
  position bias, expected or sampled outcomes from the true probabilities) and :func:`compare_replays`
  (model vs oracle vs baseline, as fractions of a reference).
"""

from .replay import PRICING_RULES, SUMMARY_COLUMNS, ReplayResult, compare_replays, replay_auction
from .scoring import BID_TYPES, ecpm, fuse_scores, smoothed_rate

__all__ = [
    "BID_TYPES",
    "PRICING_RULES",
    "SUMMARY_COLUMNS",
    "ReplayResult",
    "compare_replays",
    "ecpm",
    "fuse_scores",
    "replay_auction",
    "smoothed_rate",
]
