"""Leave-one-out splits of per-user item sequences, and their conversion to padded model input.

Pure numpy. A user's sequence ``s`` (items in time order, ids from 1; 0 is padding) is split as the standard
leave-one-out protocol does (SASRec, BERT4Rec, RecBole's ``LS: valid_and_test``):

* training: ``s[:-2]`` (next-item targets at every position of it);
* validation: input ``s[:-2]``, target ``s[-2]``;
* test: input ``s[:-1]`` (the validation item included), target ``s[-1]``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["EvalSet", "SequenceSplit", "leave_one_out", "pad_left", "training_windows"]


@dataclass(frozen=True)
class EvalSet:
    """Evaluation cases: one history (the model's input, and the items to exclude from the ranking) and one
    target item per user.

    Attributes:
        users: user ids, one per case.
        histories: item-id arrays (time order), one per case.
        targets: ``(n,)`` int64 target item ids.
    """

    users: np.ndarray
    histories: tuple
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class SequenceSplit:
    """A leave-one-out split: training sequences, validation and test cases, and the item-id range."""

    train: tuple
    valid: EvalSet
    test: EvalSet
    num_items: int
    users: np.ndarray


def _check_sequences(sequences, where: str) -> list[np.ndarray]:
    if isinstance(sequences, Mapping):
        sequences = list(sequences.values())
    out = []
    for i, s in enumerate(sequences):
        a = np.asarray(s)
        if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"{where}: sequence {i} must be a 1-D array of integer item ids, got shape {a.shape} "
                             f"dtype {a.dtype}.")
        if a.size and a.min() < 1:
            raise ValueError(f"{where}: item ids start at 1 (0 is padding); sequence {i} holds {int(a.min())}. "
                             "Shift the ids by one.")
        out.append(a.astype(np.int64, copy=False))
    return out


def leave_one_out(sequences: Mapping[int, np.ndarray] | Sequence[np.ndarray], num_items: int | None = None,
                  min_len: int = 3) -> SequenceSplit:
    """Split each user's time-ordered sequence: last item test, second-to-last validation, the rest training.

    Args:
        sequences: ``{user: item ids}`` (as :func:`~ctrkit.datasets.load_movielens_sequences` returns under
            ``"sequences"``) or a list of arrays (users are then numbered from 0).
        num_items: the largest item id (default: the largest id seen).
        min_len: users with fewer items are left out (3 is the least the split needs).

    Returns:
        a :class:`SequenceSplit`.

    Example:
        >>> sp = leave_one_out({7: [3, 1, 4, 1, 5]})
        >>> sp.train[0].tolist(), sp.valid.targets.tolist(), sp.test.targets.tolist(), sp.test.histories[0].tolist()
        ([3, 1, 4], [1], [5], [3, 1, 4, 1])
    """
    if min_len < 3:
        raise ValueError(f"leave_one_out: min_len must be >= 3 (one training, one validation and one test item), "
                         f"got {min_len}.")
    users = list(sequences.keys()) if isinstance(sequences, Mapping) else list(range(len(sequences)))
    seqs = _check_sequences(sequences, "leave_one_out")
    keep = [i for i, s in enumerate(seqs) if len(s) >= min_len]
    if not keep:
        raise ValueError(f"leave_one_out: no sequence has at least min_len={min_len} items.")
    seqs = [seqs[i] for i in keep]
    users_a = np.asarray([users[i] for i in keep])
    top = max(int(s.max()) for s in seqs)
    if num_items is None:
        num_items = top
    elif top > num_items:
        raise ValueError(f"leave_one_out: num_items={num_items} but the sequences hold item id {top}.")
    train = tuple(s[:-2] for s in seqs)
    valid = EvalSet(users_a, tuple(s[:-2] for s in seqs), np.asarray([s[-2] for s in seqs], dtype=np.int64))
    test = EvalSet(users_a, tuple(s[:-1] for s in seqs), np.asarray([s[-1] for s in seqs], dtype=np.int64))
    return SequenceSplit(train, valid, test, int(num_items), users_a)


def pad_left(sequences: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """The last ``max_len`` items of each sequence, left-padded with 0: ``(n, max_len)`` int64.

    Example:
        >>> pad_left([np.array([1, 2, 3]), np.array([4])], 2).tolist()
        [[2, 3], [0, 4]]
    """
    out = np.zeros((len(sequences), max_len), dtype=np.int64)
    for i, s in enumerate(sequences):
        s = np.asarray(s)[-max_len:]
        if len(s):
            out[i, max_len - len(s):] = s
    return out


def training_windows(sequences: Sequence[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Next-item training pairs in windows of ``max_len``: ``(inputs, targets)``, both ``(n_windows, max_len)``.

    For a sequence ``t``, the inputs are ``t[:-1]`` and the targets ``t[1:]`` (the item that follows each
    position). Long sequences are cut, from the end, into non-overlapping windows of ``max_len`` positions
    (so every training target is used once per epoch; a window does not see the items of the window before
    it); the remaining head is left-padded with 0, and target 0 means "no target". Windows come latest first.

    Example:
        >>> x, y = training_windows([np.array([1, 2, 3, 4, 5])], 3)
        >>> x.tolist(), y.tolist()
        ([[2, 3, 4], [0, 0, 1]], [[3, 4, 5], [0, 0, 2]])
    """
    xs, ys = [], []
    for t in sequences:
        t = np.asarray(t, dtype=np.int64)
        inp, tgt = t[:-1], t[1:]
        end = len(inp)
        while end > 0:
            start = max(0, end - max_len)
            xs.append(inp[start:end])
            ys.append(tgt[start:end])
            end = start
    if not xs:
        raise ValueError("training_windows: no sequence has two items or more; nothing to train on.")
    return pad_left(xs, max_len), pad_left(ys, max_len)
