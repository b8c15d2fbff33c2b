"""The progress bar of a comparison, counted in epochs so that it shows a total and an ETA from the start.

The total starts at the bound (every network of every run trains ``max_epochs`` epochs). When a network stops
early, the total becomes what is done plus, for every network still to train, the mean number of epochs of the
networks finished so far: the ETA starts as an upper bound and turns into an estimate after the first run.
"""
from __future__ import annotations

from typing import Any

from ..callbacks import Callback

__all__ = ["EpochProgress"]


class EpochProgress:
    """A tqdm bar over ``networks * max_epochs`` epochs; :meth:`callback` ticks it once per epoch of a ``fit``.

    Example:
        >>> bar = EpochProgress(networks=3, max_epochs=10, disable=True)
        >>> bar.total
        30
        >>> bar.finished(4)          # a network stopped after 4 of its 10 epochs; 2 networks left
        >>> bar.total                # 4 done + 2 x 4 expected
        12
        >>> bar.close()
    """

    def __init__(self, networks: int, max_epochs: int, disable: bool = False, desc: str = "compare") -> None:
        from tqdm.auto import tqdm
        self.left, self.max_epochs, self.done, self.since = networks, max_epochs, 0, 0
        self.runs: list[int] = []
        self.bar = tqdm(total=networks * max_epochs, desc=desc, unit="epoch", disable=disable, dynamic_ncols=True)

    @property
    def total(self) -> int:
        return int(self.bar.total)

    def callback(self) -> Callback:
        """A callback that advances the bar by one at the end of every epoch."""
        bar = self

        class _Tick(Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                bar.done += 1
                bar.since += 1
                bar.bar.update(1)
        return _Tick()

    def finished(self, epochs: int) -> None:
        """One network is trained (``epochs`` epochs): re-estimate the total from the networks finished so far."""
        self.runs.append(epochs)
        self.left = max(self.left - 1, 0)
        if epochs > self.since:   # epochs the callback did not see (it was not passed to fit)
            self.bar.update(epochs - self.since)
            self.done += epochs - self.since
        self.since = 0
        mean = sum(self.runs) / len(self.runs)
        self.bar.total = self.done + round(self.left * min(mean, self.max_epochs))
        self.bar.refresh()

    def set_postfix_str(self, text: str) -> None:
        self.bar.set_postfix_str(text)

    def close(self) -> None:
        self.bar.close()
