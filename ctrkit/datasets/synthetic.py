"""Synthetic data: the MMoE paper's controllable-correlation regression tasks and a Criteo-like CTR/CVR set.

This module is pure numpy/pandas (it does not import torch).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "make_mmoe_synthetic",
    "label_correlation",
    "make_criteo_like",
    "iter_criteo_like",
    "default_vocab_sizes",
]


# ----------------------------------------------------------------------------------------------------------
# MMoE synthetic data (Ma et al., KDD 2018, section 3.2)
# ----------------------------------------------------------------------------------------------------------
def make_mmoe_synthetic(
    n: int = 10000,
    p: float = 0.5,
    *,
    d: int = 100,
    c: float = 1.0,
    m: int = 10,
    noise: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Two regression tasks whose correlation is controlled by ``p`` (MMoE paper, §3.2).

    The generator of Ma et al. (KDD 2018):

    1. Draw two orthogonal unit vectors ``u1, u2`` in R^d (QR decomposition of a d x 2 standard Gaussian
       matrix).
    2. ``w1 = c * u1`` and ``w2 = c * (p * u1 + sqrt(1 - p^2) * u2)``, so that ``cos(w1, w2) = p``.
    3. Draw ``x ~ N(0, I_d)`` for each of the ``n`` rows.
    4. ``y_k = w_k^T x + sum_{i=1..m} sin(alpha_i * w_k^T x + beta_i) + eps_k`` for k = 1, 2, with
       ``alpha_i, beta_i ~ N(0, 1)`` drawn once per call and shared by both tasks, and
       ``eps_k ~ N(0, noise^2)`` i.i.d.

    The paper does not give ``c``, ``m``, ``alpha`` or ``beta``. The defaults here (``c=1``, ``m=10``,
    ``alpha, beta ~ N(0, 1)``) are those of the PLE paper's reproduction (Tang et al., RecSys 2020); the
    popular keras-mmoe reimplementation used ``c=0.3`` and ``m=5``. ``noise=0.1`` follows the paper's
    ``N(0, 0.01)`` noise (variance 0.01) and ``d=100`` its input dimension.

    Random draws come from ``np.random.default_rng(seed)`` in this order: the d x 2 Gaussian matrix, alpha
    (m), beta (m), X (n x d), eps (n x 2). Computation is in float64; outputs are cast to float32.

    Args:
        n: Number of samples (>= 1).
        p: Cosine similarity of the two task weight vectors, in [-1, 1]. The label correlation grows with
            ``p`` (about 1 at ``p=1``, about 0 at ``p=0``).
        d: Input dimension (>= 2).
        c: Scale of the weight vectors (> 0).
        m: Number of sine terms (>= 0).
        noise: Standard deviation of the additive Gaussian noise (>= 0).
        seed: Seed of ``np.random.default_rng``; the same arguments always give the same arrays.

    Returns:
        ``(X, Y)``: ``X`` float32 of shape ``(n, d)`` and ``Y`` float32 of shape ``(n, 2)`` (one column per
        task).

    Raises:
        ValueError: if ``p`` is outside [-1, 1], ``d < 2``, ``n < 1``, ``m < 0``, ``c <= 0`` or
            ``noise < 0``.

    Example:
        >>> X, Y = make_mmoe_synthetic(n=20000, p=0.9, seed=1)
        >>> X.shape, Y.shape, X.dtype
        ((20000, 100), (20000, 2), dtype('float32'))
        >>> label_correlation(Y) > 0.5
        True
    """
    if not (isinstance(p, (int, float, np.floating, np.integer)) and -1.0 <= float(p) <= 1.0):
        raise ValueError(f"make_mmoe_synthetic: p must be in [-1, 1], got {p!r}.")
    if int(d) != d or d < 2:
        raise ValueError(f"make_mmoe_synthetic: d must be an integer >= 2, got {d!r}.")
    if int(n) != n or n < 1:
        raise ValueError(f"make_mmoe_synthetic: n must be an integer >= 1, got {n!r}.")
    if int(m) != m or m < 0:
        raise ValueError(f"make_mmoe_synthetic: m must be an integer >= 0, got {m!r}.")
    if not c > 0:
        raise ValueError(f"make_mmoe_synthetic: c must be > 0, got {c!r}.")
    if not noise >= 0:
        raise ValueError(f"make_mmoe_synthetic: noise must be >= 0, got {noise!r}.")
    n, d, m, p = int(n), int(d), int(m), float(p)

    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, 2)))  # orthonormal columns
    u1, u2 = q[:, 0], q[:, 1]
    w1 = c * u1
    w2 = c * (p * u1 + math.sqrt(max(0.0, 1.0 - p * p)) * u2)
    alpha = rng.standard_normal(m)
    beta = rng.standard_normal(m)
    x = rng.standard_normal((n, d))
    eps = rng.normal(0.0, noise, size=(n, 2)) if noise > 0 else np.zeros((n, 2))

    y = np.empty((n, 2), dtype=np.float64)
    for k, w in enumerate((w1, w2)):
        z = x @ w  # (n,)
        y[:, k] = z + np.sin(np.multiply.outer(z, alpha) + beta).sum(axis=1) + eps[:, k]
    return x.astype(np.float32), y.astype(np.float32)


def label_correlation(Y: np.ndarray) -> float:
    """Pearson correlation of the two label columns of ``Y``.

    Args:
        Y: Array-like of shape ``(n, 2)`` (for example the ``Y`` of :func:`make_mmoe_synthetic`).

    Returns:
        The Pearson correlation coefficient as a Python float (NaN if a column is constant).

    Raises:
        ValueError: if ``Y`` is not of shape ``(n, 2)`` with ``n >= 2``.

    Example:
        >>> _, Y = make_mmoe_synthetic(n=20000, p=1.0)
        >>> label_correlation(Y) > 0.95
        True
    """
    arr = np.asarray(Y, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 2:
        raise ValueError(f"label_correlation: Y must have shape (n, 2) with n >= 2, got {arr.shape}.")
    a, b = arr[:, 0] - arr[:, 0].mean(), arr[:, 1] - arr[:, 1].mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else float("nan")


# ----------------------------------------------------------------------------------------------------------
# Criteo-like CTR / CVR data
# ----------------------------------------------------------------------------------------------------------
_NAN_RATE = 0.05  # fraction of missing dense values
_N_SIGNAL_SPARSE = 4  # sparse fields with a hidden per-id effect
_N_SIGNAL_DENSE = 3  # dense fields with a hidden linear effect
_CALIBRATION_ROWS = 20000


def default_vocab_sizes(n_sparse: int = 26) -> list[int]:
    """Default vocabulary sizes of :func:`make_criteo_like`: geometric from 10 to 30,000.

    Args:
        n_sparse: Number of sparse fields.

    Returns:
        ``n_sparse`` integers, increasing geometrically from 10 to 30,000 (for 26 fields they sum to about
        110,000).

    Example:
        >>> sizes = default_vocab_sizes(26)
        >>> sizes[0], sizes[-1]
        (10, 30000)
    """
    if n_sparse <= 0:
        return []
    if n_sparse == 1:
        return [1000]
    return [int(v) for v in np.rint(np.geomspace(10, 30000, n_sparse))]


@dataclass(frozen=True)
class _CriteoSpec:
    """The fixed (seed-only) part of the Criteo-like generator: marginals and the hidden label function."""

    n_dense: int
    n_sparse: int
    vocab_sizes: tuple[int, ...]
    dense_lognormal: np.ndarray  # (n_dense,) bool: count-like log-normal column, else Gaussian
    dense_mu: np.ndarray  # (n_dense,)
    dense_sigma: np.ndarray  # (n_dense,)
    cdfs: tuple[np.ndarray, ...]  # per field, cumulative Zipf probabilities over ranks 0..V-1
    id_perms: tuple[np.ndarray, ...]  # per field, rank -> id
    sig_dense: np.ndarray  # dense columns used by the hidden function
    sig_dense_mean: np.ndarray
    sig_dense_std: np.ndarray
    w_click_dense: np.ndarray
    w_buy_dense: np.ndarray
    sig_sparse: np.ndarray  # sparse fields used by the hidden function
    emb_click: tuple[np.ndarray, ...]  # per signal field, a value per id
    emb_buy: tuple[np.ndarray, ...]
    bias_click: float
    bias_buy: float


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _solve_bias(target: float, signal: np.ndarray, weight: np.ndarray | None = None) -> float:
    """Bias b with weighted mean of sigmoid(b + signal) == target (bisection; the mean is increasing in b)."""
    lo, hi = -30.0, 30.0
    w = np.ones_like(signal) if weight is None else weight
    wsum = w.sum()
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if float((w * _sigmoid(mid + signal)).sum() / wsum) < target:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _gen_features(
    spec: _CriteoSpec, n: int, rng: np.random.Generator
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Dense columns (float64 with NaN) and sparse columns (int64 ids), one contiguous array per column."""
    dense = []
    for j in range(spec.n_dense):
        col = spec.dense_mu[j] + spec.dense_sigma[j] * rng.standard_normal(n)
        if spec.dense_lognormal[j]:
            col = np.floor(np.exp(col, out=col), out=col)  # count-like, >= 0
        col[rng.random(n) < _NAN_RATE] = np.nan
        dense.append(col)
    sparse = []
    for j in range(spec.n_sparse):
        ranks = np.searchsorted(spec.cdfs[j], rng.random(n), side="right")
        np.minimum(ranks, spec.vocab_sizes[j] - 1, out=ranks)  # guard against float round-off at the top
        sparse.append(spec.id_perms[j][ranks])
    return dense, sparse


def _dense_signal_inputs(spec: _CriteoSpec, dense: list[np.ndarray]) -> np.ndarray:
    """(n, k) transformed signal dense columns: log1p for count-like columns, raw for Gaussian ones."""
    n = dense[0].shape[0] if dense else 0
    t = np.empty((n, len(spec.sig_dense)))
    for i, j in enumerate(spec.sig_dense):
        t[:, i] = np.log1p(np.maximum(dense[j], 0.0)) if spec.dense_lognormal[j] else dense[j]
    return t


def _signals(
    spec: _CriteoSpec, dense: list[np.ndarray], sparse: list[np.ndarray], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Hidden click and purchase logits (without biases)."""
    t = (_dense_signal_inputs(spec, dense) - spec.sig_dense_mean) / spec.sig_dense_std
    t = np.nan_to_num(t, nan=0.0)  # a missing value contributes as its mean
    s_click = t @ spec.w_click_dense if t.shape[1] else np.zeros(n)
    s_buy = t @ spec.w_buy_dense if t.shape[1] else np.zeros(n)
    for f, e_c, e_b in zip(spec.sig_sparse, spec.emb_click, spec.emb_buy):
        ids = sparse[f]
        s_click = s_click + e_c[ids]
        s_buy = s_buy + e_b[ids]
    # purchases share part of the click signal, so the two labels are correlated beyond "purchase => click"
    return s_click, 0.5 * s_click + s_buy


@functools.lru_cache(maxsize=8)
def _make_spec(
    n_dense: int,
    n_sparse: int,
    vocab_sizes: tuple[int, ...],
    zipf_a: float,
    seed: int,
    ctr: float,
    cvr: float,
) -> _CriteoSpec:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
    lognormal = np.arange(n_dense) % 3 != 2  # two of three columns count-like, the rest Gaussian
    mu = np.where(lognormal, rng.uniform(0.5, 3.0, n_dense), rng.normal(0.0, 5.0, n_dense))
    sigma = np.where(lognormal, rng.uniform(0.5, 1.5, n_dense), rng.uniform(0.5, 10.0, n_dense))
    cdfs, perms = [], []
    for v in vocab_sizes:
        w = np.arange(1, v + 1, dtype=np.float64) ** (-float(zipf_a))
        cdf = np.cumsum(w)
        cdfs.append(cdf / cdf[-1])
        perms.append(rng.permutation(v).astype(np.int64))
    k_dense = min(_N_SIGNAL_DENSE, n_dense)
    k_sparse = min(_N_SIGNAL_SPARSE, n_sparse)
    sig_dense = np.sort(rng.choice(n_dense, size=k_dense, replace=False)) if k_dense else np.zeros(0, int)
    sig_sparse = np.sort(rng.choice(n_sparse, size=k_sparse, replace=False)) if k_sparse else np.zeros(0, int)
    w_click_dense = rng.normal(0.0, 0.6, k_dense)
    w_buy_dense = rng.normal(0.0, 0.6, k_dense)
    emb_click = tuple(rng.normal(0.0, 0.6, vocab_sizes[f]) for f in sig_sparse)
    emb_buy = tuple(rng.normal(0.0, 0.6, vocab_sizes[f]) for f in sig_sparse)
    spec = _CriteoSpec(
        n_dense=n_dense,
        n_sparse=n_sparse,
        vocab_sizes=vocab_sizes,
        dense_lognormal=lognormal,
        dense_mu=mu,
        dense_sigma=sigma,
        cdfs=tuple(cdfs),
        id_perms=tuple(perms),
        sig_dense=sig_dense,
        sig_dense_mean=np.zeros(k_dense),
        sig_dense_std=np.ones(k_dense),
        w_click_dense=w_click_dense,
        w_buy_dense=w_buy_dense,
        sig_sparse=sig_sparse,
        emb_click=emb_click,
        emb_buy=emb_buy,
        bias_click=0.0,
        bias_buy=0.0,
    )
    # Calibrate on a sample from its own stream: standardise the dense inputs, then pick the biases so the
    # click rate is ``ctr`` and the purchase rate among clicks is ``cvr`` (in expectation).
    cal_rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    dense, sparse = _gen_features(spec, _CALIBRATION_ROWS, cal_rng)
    t = _dense_signal_inputs(spec, dense)
    mean, std = np.nanmean(t, axis=0), np.nanstd(t, axis=0)
    spec = _replace(spec, sig_dense_mean=mean, sig_dense_std=np.where(std > 0, std, 1.0))
    s_click, s_buy = _signals(spec, dense, sparse, _CALIBRATION_ROWS)
    b_click = _solve_bias(ctr, s_click)
    b_buy = _solve_bias(cvr, s_buy, weight=_sigmoid(b_click + s_click))
    return _replace(spec, bias_click=b_click, bias_buy=b_buy)


def _replace(spec: _CriteoSpec, **changes) -> _CriteoSpec:
    return dataclasses.replace(spec, **changes)


def _validate_criteo_args(
    n_rows, n_dense, n_sparse, vocab_sizes, zipf_a, seed, ctr, cvr
) -> tuple[int, int, int, tuple[int, ...]]:
    name = "make_criteo_like"
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"{name}: seed must be an integer >= 0, got {seed!r}.")
    if int(n_rows) != n_rows or n_rows < 0:
        raise ValueError(f"{name}: n_rows must be an integer >= 0, got {n_rows!r}.")
    if int(n_dense) != n_dense or n_dense < 0:
        raise ValueError(f"{name}: n_dense must be an integer >= 0, got {n_dense!r}.")
    if int(n_sparse) != n_sparse or n_sparse < 0:
        raise ValueError(f"{name}: n_sparse must be an integer >= 0, got {n_sparse!r}.")
    if vocab_sizes is None:
        sizes = tuple(default_vocab_sizes(int(n_sparse)))
    else:
        sizes = tuple(int(v) for v in vocab_sizes)
    if len(sizes) != n_sparse:
        raise ValueError(f"{name}: vocab_sizes has {len(sizes)} entries but n_sparse is {n_sparse}.")
    if any(v < 1 for v in sizes):
        raise ValueError(f"{name}: every vocabulary size must be >= 1, got {sizes}.")
    if not zipf_a >= 0:
        raise ValueError(f"{name}: zipf_a must be >= 0, got {zipf_a!r}.")
    if not 0 < ctr < 1:
        raise ValueError(f"{name}: ctr must be in (0, 1), got {ctr!r}.")
    if not 0 < cvr < 1:
        raise ValueError(f"{name}: cvr must be in (0, 1), got {cvr!r}.")
    return int(n_rows), int(n_dense), int(n_sparse), sizes


def _chunk_frame(spec: _CriteoSpec, n: int, rng: np.random.Generator, start: int) -> pd.DataFrame:
    dense, sparse = _gen_features(spec, n, rng)
    s_click, s_buy = _signals(spec, dense, sparse, n)
    click = rng.random(n) < _sigmoid(spec.bias_click + s_click)
    purchase = click & (rng.random(n) < _sigmoid(spec.bias_buy + s_buy))
    cols: dict[str, np.ndarray] = {}
    for j in range(spec.n_dense):
        cols[f"I{j + 1}"] = dense[j].astype(np.float32)
    for j in range(spec.n_sparse):
        cols[f"C{j + 1}"] = sparse[j]
    cols["click"] = click.astype(np.int64)
    cols["purchase"] = purchase.astype(np.int64)
    return pd.DataFrame(cols, index=pd.RangeIndex(start, start + n))


def make_criteo_like(
    n_rows: int,
    *,
    n_dense: int = 13,
    n_sparse: int = 26,
    vocab_sizes: Sequence[int] | None = None,
    zipf_a: float = 1.2,
    seed: int = 0,
    ctr: float = 0.2,
    cvr: float = 0.2,
) -> pd.DataFrame:
    """Criteo-shaped synthetic data with two learnable, correlated labels (``click``, ``purchase``).

    Columns:

    * ``I1``..``I{n_dense}`` (float32): two of every three columns are count-like, ``floor(exp(N(mu, s)))``
      (log-normal, >= 0), the others Gaussian; each value is missing (NaN) with probability 0.05.
    * ``C1``..``C{n_sparse}`` (int64): ids in ``[0, vocab_sizes[j])``. The id's popularity rank ``k``
      (1 = most frequent) follows a Zipf law truncated to the vocabulary, ``P(k) ∝ k^-zipf_a``, sampled by inverse CDF;
      ranks are mapped to ids by a fixed random permutation per field, so id 0 is not special.
    * ``click`` (int64, 0/1): Bernoulli(sigmoid(b_c + f_c(x))) where the hidden function ``f_c`` sums a
      random value per id of 4 sparse fields and a random linear term in 3 dense fields (log1p of
      count-like columns, standardised, NaN counted as the mean). ``b_c`` is calibrated so the click rate is
      about ``ctr``.
    * ``purchase`` (int64, 0/1): 0 unless ``click == 1``; then Bernoulli(sigmoid(b_p + 0.5 f_c(x) + f_p(x)))
      with a second hidden function ``f_p`` over the same fields; ``b_p`` is calibrated so the purchase rate
      among clicks is about ``cvr``.

    The marginals and hidden functions depend only on ``seed`` (and the shape arguments), never on
    ``n_rows``; the rows are drawn from ``np.random.default_rng(SeedSequence([seed, 2, 0]))``, which makes
    ``make_criteo_like(n, ...)`` equal to the first chunk of ``iter_criteo_like(n, chunk_rows >= n, ...)``.
    Everything is vectorised: a million rows take a few seconds.

    Args:
        n_rows: Number of rows (>= 0).
        n_dense: Number of dense columns.
        n_sparse: Number of sparse columns.
        vocab_sizes: Vocabulary size of each sparse field; defaults to :func:`default_vocab_sizes`
            (geometric from 10 to 30,000, about 110,000 ids in all for 26 fields).
        zipf_a: Zipf exponent of the id distribution (0 gives uniform ids).
        seed: Seed of the hidden function and of the rows.
        ctr: Target click rate, in (0, 1).
        cvr: Target purchase rate among clicks, in (0, 1).

    Returns:
        A DataFrame with columns ``I*``, ``C*``, ``click``, ``purchase`` and a RangeIndex.

    Raises:
        ValueError: on negative sizes or seed, a ``vocab_sizes`` of the wrong length or with a size < 1, a
            negative ``zipf_a``, or ``ctr`` / ``cvr`` outside (0, 1).

    Example:
        >>> df = make_criteo_like(100_000, seed=0)
        >>> df.shape
        (100000, 41)
        >>> bool((df.purchase <= df.click).all())
        True
    """
    n_rows, n_dense, n_sparse, sizes = _validate_criteo_args(
        n_rows, n_dense, n_sparse, vocab_sizes, zipf_a, seed, ctr, cvr
    )
    spec = _make_spec(n_dense, n_sparse, sizes, float(zipf_a), int(seed), float(ctr), float(cvr))
    return _chunk_frame(spec, n_rows, _chunk_rng(int(seed), 0), 0)


def iter_criteo_like(
    n_rows: int,
    chunk_rows: int = 1_000_000,
    *,
    n_dense: int = 13,
    n_sparse: int = 26,
    vocab_sizes: Sequence[int] | None = None,
    zipf_a: float = 1.2,
    seed: int = 0,
    ctr: float = 0.2,
    cvr: float = 0.2,
) -> Iterator[pd.DataFrame]:
    """Stream :func:`make_criteo_like` data chunk by chunk, for data sets larger than memory.

    All chunks share the hidden label function and marginals (fixed by ``seed``), so they follow one
    distribution; chunk ``k`` draws its rows from ``np.random.default_rng(SeedSequence([seed, 2, k]))``.
    Chunk ``k`` has index ``k * chunk_rows ...``, so concatenating the chunks gives a frame with a
    RangeIndex over ``n_rows`` rows. The result depends on ``chunk_rows``.

    Args:
        n_rows: Total number of rows (>= 0).
        chunk_rows: Rows per chunk (>= 1); the last chunk may be shorter.
        n_dense, n_sparse, vocab_sizes, zipf_a, seed, ctr, cvr: As in :func:`make_criteo_like`.

    Yields:
        DataFrames with the columns of :func:`make_criteo_like`, ``ceil(n_rows / chunk_rows)`` of them.

    Raises:
        ValueError: as :func:`make_criteo_like`, or if ``chunk_rows < 1``.

    Example:
        >>> total = 0
        >>> for chunk in iter_criteo_like(250_000, chunk_rows=100_000, seed=3):
        ...     total += int(chunk.click.sum())
    """
    n_rows, n_dense, n_sparse, sizes = _validate_criteo_args(
        n_rows, n_dense, n_sparse, vocab_sizes, zipf_a, seed, ctr, cvr
    )
    if int(chunk_rows) != chunk_rows or chunk_rows < 1:
        raise ValueError(f"iter_criteo_like: chunk_rows must be an integer >= 1, got {chunk_rows!r}.")
    spec = _make_spec(n_dense, n_sparse, sizes, float(zipf_a), int(seed), float(ctr), float(cvr))
    return _iter_chunks(spec, n_rows, int(chunk_rows), int(seed))


def _chunk_rng(seed: int, k: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, 2, k]))


def _iter_chunks(spec: _CriteoSpec, n_rows: int, chunk_rows: int, seed: int) -> Iterator[pd.DataFrame]:
    for k in range(-(-n_rows // chunk_rows)):
        start = k * chunk_rows
        yield _chunk_frame(spec, min(chunk_rows, n_rows - start), _chunk_rng(seed, k), start)
