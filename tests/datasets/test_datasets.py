"""Tests of ctrkit.datasets: bundled census / samples / MovieLens loaders and the synthetic generators."""

from __future__ import annotations

import ast
import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctrkit import datasets as ds
from ctrkit.datasets import (
    CENSUS_CATEGORICAL,
    CENSUS_COLUMNS,
    CENSUS_CONTINUOUS,
    CENSUS_EDUCATION_COLLEGE,
    SAMPLE_NAMES,
    census_feature_types,
    iter_criteo_like,
    label_correlation,
    load_census_income,
    load_movielens_100k,
    load_movielens_sequences,
    load_sample,
    make_criteo_like,
    make_mmoe_synthetic,
    split_indices,
    train_val_test_split,
)

DATASETS_DIR = Path(ds.__file__).resolve().parent
CENSUS_GZ = DATASETS_DIR / "data" / "census-income.test.gz"
ML_DIR = DATASETS_DIR / "data" / "ml-100k"
LABEL_DEFINING = ("income_50k", "marital_stat", "education")


# ----------------------------------------------------------------------------------------------------------
# package hygiene
# ----------------------------------------------------------------------------------------------------------
def test_all_exports_exist():
    assert len(ds.__all__) == len(set(ds.__all__))
    for name in ds.__all__:
        assert hasattr(ds, name), name


def test_modules_have_no_top_level_torch_import():
    for path in DATASETS_DIR.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only
            if isinstance(node, ast.Import):
                assert not any(a.name.split(".")[0] == "torch" for a in node.names), path.name
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] != "torch", path.name


def test_importing_datasets_does_not_import_torch():
    # Import the subpackage under a stub parent so that ctrkit/__init__.py (which may import torch for the
    # models) does not run: only ctrkit.datasets' own imports are checked.
    code = (
        "import sys, types\n"
        "pkg = types.ModuleType('ctrkit')\n"
        f"pkg.__path__ = [{str(DATASETS_DIR.parent)!r}]\n"
        "sys.modules['ctrkit'] = pkg\n"
        "import ctrkit.datasets\n"
        "ctrkit.datasets.make_criteo_like(10)\n"
        "print('TORCH' if 'torch' in sys.modules else 'OK')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "OK"


# ----------------------------------------------------------------------------------------------------------
# census-income
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw_census_fields():
    """The bundled census file parsed independently of pandas: fields age, education, marital_stat and
    income_50k (indices 0, 4, 7, 41 of the 42), stripped, per row."""
    out = []
    with gzip.open(CENSUS_GZ, "rt", encoding="utf-8") as fh:
        for line in fh:
            f = line.split(",")
            assert len(f) == 42
            out.append({0: f[0].strip(), 4: f[4].strip(), 7: f[7].strip(), 41: f[41].strip()})
    return out


@pytest.fixture(scope="module")
def census1():
    return load_census_income(group=1)


@pytest.fixture(scope="module")
def census2():
    return load_census_income(group=2)


def test_census_column_constants():
    assert len(CENSUS_COLUMNS) == 42 == len(set(CENSUS_COLUMNS))
    assert CENSUS_COLUMNS[0] == "age" and CENSUS_COLUMNS[-1] == "income_50k"
    assert CENSUS_COLUMNS[24] == "instance_weight"
    assert len(CENSUS_CONTINUOUS) == 7 and set(CENSUS_CONTINUOUS) <= set(CENSUS_COLUMNS)
    assert set(CENSUS_CONTINUOUS).isdisjoint(CENSUS_CATEGORICAL)
    assert set(CENSUS_CATEGORICAL) | set(CENSUS_CONTINUOUS) | {"instance_weight", "income_50k"} == set(
        CENSUS_COLUMNS
    )


def test_census_shapes_and_columns(census1):
    X, y = census1
    assert len(X) == len(y) == 99_762
    assert X.shape[1] == 38
    for col in LABEL_DEFINING + ("instance_weight",):
        assert col not in X.columns
    assert list(y.columns) == ["income", "marital"]
    assert X.index.equals(y.index)
    sparse, dense = census_feature_types()
    assert sorted(sparse + dense) == sorted(X.columns)
    assert set(dense) == set(CENSUS_CONTINUOUS)
    assert [c for c in X.columns if c in dense] == dense and [c for c in X.columns if c in sparse] == sparse


def test_census_dtypes_and_cleaning(census1):
    X, _ = census1
    sparse, dense = census_feature_types()
    for col in dense:
        assert X[col].dtype == np.float64, col
    for col in sparse:
        assert X[col].dtype == object, col  # not pandas 'category' / 'str'
        uniq = pd.unique(X[col].dropna())
        assert all(isinstance(v, str) for v in uniq), col
        assert all(v == v.strip() and v != "?" for v in uniq), col
    # integer-coded categoricals stay strings
    for col in ("detailed_industry_recode", "detailed_occupation_recode", "own_business_or_self_employed",
                "veterans_benefits", "year"):
        assert set(X[col].unique()) <= {str(i) for i in range(100)}, col
    assert set(X["year"].unique()) == {"94", "95"}
    # '?' in the raw file became missing
    assert X["migration_code_change_in_msa"].isna().sum() == 49_946
    assert X["country_of_birth_self"].isna().sum() == 1_764
    assert X["age"].notna().all() and X["age"].between(0, 90).all()
    # trailing spaces are stripped too
    assert "Foreign born- Not a citizen of U S" in set(X["citizenship"])


def test_census_first_row(census1):
    X, y = census1
    row = X.iloc[0]
    assert row["age"] == 38.0 and row["class_of_worker"] == "Private"
    assert row["detailed_industry_recode"] == "6" and row["weeks_worked_in_year"] == 12.0
    assert pd.isna(row["migration_code_change_in_reg"])
    assert y.iloc[0].tolist() == [0, 0]  # "- 50000.", married


def test_census_labels_group1(census1, raw_census_fields):
    _, y = census1
    assert (y.dtypes == np.int64).all()
    assert set(np.unique(y.to_numpy())) <= {0, 1}
    income = np.array([r[41] == "50000+." for r in raw_census_fields])
    never = np.array([r[7] == "Never married" for r in raw_census_fields])
    np.testing.assert_array_equal(y["income"].to_numpy(), income.astype(np.int64))
    np.testing.assert_array_equal(y["marital"].to_numpy(), never.astype(np.int64))
    assert 0.03 < y["income"].mean() < 0.10  # observed 6.2 %
    assert 0.35 < y["marital"].mean() < 0.50  # observed 43.2 %


def test_census_labels_group2(census1, census2, raw_census_fields):
    X1, y1 = census1
    X2, y2 = census2
    assert list(y2.columns) == ["education", "marital"]
    pd.testing.assert_frame_equal(X1, X2)
    pd.testing.assert_series_equal(y1["marital"], y2["marital"])
    college = np.array([r[4] in CENSUS_EDUCATION_COLLEGE for r in raw_census_fields])
    np.testing.assert_array_equal(y2["education"].to_numpy(), college.astype(np.int64))
    assert 0.10 < y2["education"].mean() < 0.20  # observed 14.7 %
    assert len(CENSUS_EDUCATION_COLLEGE) == 4
    assert not any("Associates" in e or "Some college" in e for e in CENSUS_EDUCATION_COLLEGE)
    # every listed value really occurs in the data (no typo in the list)
    assert set(CENSUS_EDUCATION_COLLEGE) <= {r[4] for r in raw_census_fields}


@pytest.mark.parametrize("bad", [0, 3, "1", None])
def test_census_group_validation(bad):
    with pytest.raises(ValueError, match="load_census_income: group must be 1 or 2"):
        load_census_income(group=bad)


def test_census_group_message_exact():
    with pytest.raises(ValueError) as exc:
        load_census_income(group=3)
    assert str(exc.value) == "load_census_income: group must be 1 or 2, got 3."


def test_census_custom_path(tmp_path, raw_census_fields):
    lines = []
    with gzip.open(CENSUS_GZ, "rt", encoding="utf-8") as fh:
        for _ in range(3):
            lines.append(fh.readline())
    path = tmp_path / "mini.data"
    path.write_text("".join(lines), encoding="utf-8")
    X, y = load_census_income(1, path=path)
    assert len(X) == 3 and X.shape[1] == 38
    assert X["age"].tolist() == [float(r[0]) for r in raw_census_fields[:3]]
    with pytest.raises(FileNotFoundError):
        load_census_income(1, path=tmp_path / "missing.gz")


def test_census_returns_independent_copies():
    X, y = load_census_income(1)
    X.loc[0, "age"] = -1.0
    y.loc[0, "income"] = 7
    X2, y2 = load_census_income(1)
    assert X2.loc[0, "age"] == 38.0 and y2.loc[0, "income"] == 0


# ----------------------------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 7, 10, 1000, 99_762])
def test_split_indices_disjoint_covering(n):
    parts = split_indices(n)
    assert len(parts) == 3
    allidx = np.concatenate(parts)
    assert len(allidx) == n
    np.testing.assert_array_equal(np.sort(allidx), np.arange(n))
    for part, frac in zip(parts, (0.8, 0.1, 0.1)):
        assert part.dtype == np.int64
        assert abs(len(part) - frac * n) <= 1


def test_split_indices_deterministic_and_seeded():
    a = split_indices(1000, (0.7, 0.2, 0.1), seed=5)
    b = split_indices(1000, (0.7, 0.2, 0.1), seed=5)
    c = split_indices(1000, (0.7, 0.2, 0.1), seed=6)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    # a permutation, not a contiguous block
    assert not np.array_equal(np.sort(a[0]), np.arange(700))


@pytest.mark.parametrize("fractions,msg", [((0.8, 0.1), "sum to 1"), ((0.5, 0.6, -0.1), "non-negative"),
                                           ((0.9, 0.2, 0.1), "sum to 1")])
def test_split_indices_validation(fractions, msg):
    with pytest.raises(ValueError, match=msg):
        split_indices(10, fractions)


def test_train_val_test_split_frames():
    X = pd.DataFrame({"a": np.arange(50)})
    y = np.arange(50) * 10
    parts = train_val_test_split(X, y, fractions=(0.6, 0.2, 0.2), seed=1)
    assert len(parts) == 6
    X_tr, X_va, X_te, y_tr, y_va, y_te = parts
    assert (len(X_tr), len(X_va), len(X_te)) == (30, 10, 10)
    np.testing.assert_array_equal(X_tr["a"].to_numpy() * 10, y_tr)
    np.testing.assert_array_equal(X_te.index.to_numpy(), split_indices(50, (0.6, 0.2, 0.2), seed=1)[2])
    with pytest.raises(ValueError):
        train_val_test_split(X, y[:10])


# ----------------------------------------------------------------------------------------------------------
# samples
# ----------------------------------------------------------------------------------------------------------
EXPECTED_SAMPLES = {
    # name: (rows, columns, label columns)
    "criteo": (200, 40, ["label"]),
    "avazu": (100, 24, ["click"]),
    "movielens": (200, 10, ["rating"]),
    "byterec": (200, 12, ["finish", "like"]),
    "census": (200, 43, ["income_50k", "marital_stat"]),
    "ali_ccp_train": (100, 33, ["click", "purchase"]),
    "ali_ccp_val": (50, 33, ["click", "purchase"]),
    "ali_ccp_test": (50, 33, ["click", "purchase"]),
    "aliexpress_train": (100, 82, ["click", "conversion"]),
    "aliexpress_test": (20, 82, ["click", "conversion"]),
}


def test_sample_names():
    assert set(SAMPLE_NAMES) == set(EXPECTED_SAMPLES)
    assert isinstance(SAMPLE_NAMES, tuple)


@pytest.mark.parametrize("name", sorted(EXPECTED_SAMPLES))
def test_load_sample(name):
    rows, cols, labels = EXPECTED_SAMPLES[name]
    df = load_sample(name)
    assert df.shape == (rows, cols)
    for lab in labels:
        assert lab in df.columns
    assert list(ds.SAMPLE_LABELS[name]) == labels
    for col in df.columns:
        assert df[col].dtype == object or np.issubdtype(df[col].dtype, np.number), (col, df[col].dtype)
    if name in ("census", "movielens"):
        return
    for lab in labels:
        assert set(df[lab].unique()) <= {0, 1}, lab
        assert df[lab].dtype == np.int64


def test_load_sample_unknown():
    with pytest.raises(ValueError) as exc:
        load_sample("kdd12")
    for name in SAMPLE_NAMES:
        assert name in str(exc.value)


def test_sample_criteo_and_avazu_types():
    cr = load_sample("criteo")
    assert list(cr.columns) == ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    assert all(cr[f"I{i}"].dtype == np.float64 for i in range(1, 14))
    assert cr["I1"].isna().any() and cr["C1"].map(type).eq(str).all()
    av = load_sample("avazu")
    assert av["id"].iloc[1] == "10000169349117863715"  # above int64's range: kept as text
    assert av["site_id"].iloc[0] == "1fbe01fe"


def test_sample_byterec_layout():
    df = load_sample("byterec")
    assert list(df.columns) == list(ds.BYTEREC_COLUMNS)
    assert df.iloc[0].tolist()[:3] == [37448, 115, 567569]
    assert set(df["finish"]) <= {0, 1} and set(df["like"]) <= {0, 1}


def test_sample_census_layout():
    df = load_sample("census")
    assert list(df.columns) == ["id"] + list(CENSUS_COLUMNS)
    assert df["id"].dtype == np.int64 and df["id"].iloc[0] == 138481
    assert df["age"].iloc[0] == 62.0 and df["class_of_worker"].iloc[0] == "Private"
    assert set(df["income_50k"]) == {"- 50000.", "50000+."}
    assert "Never married" in set(df["marital_stat"])


def test_sample_aliexpress_layout():
    for name in ("aliexpress_train", "aliexpress_test"):
        df = load_sample(name)
        expected = (["search_id"] + [f"categorical_{i}" for i in range(1, 17)]
                    + [f"numerical_{i}" for i in range(1, 64)] + ["click", "conversion"])
        assert list(df.columns) == expected
        assert all(df[f"categorical_{i}"].dtype == np.int64 for i in range(1, 17))
        assert all(df[f"numerical_{i}"].dtype == np.float64 for i in range(1, 64))
        assert ((df["conversion"] == 0) | (df["click"] == 1)).all()  # conversion implies click


def test_sample_ali_ccp_conversion_after_click():
    for name in ("ali_ccp_train", "ali_ccp_val", "ali_ccp_test"):
        df = load_sample(name)
        assert list(df.columns[:2]) == ["click", "purchase"]
        assert (df["purchase"] <= df["click"]).all()


def test_sample_movielens():
    df = load_sample("movielens")
    assert df["genres"].str.contains("|", regex=False).any()
    assert df["zip"].map(type).eq(str).all()
    assert df["rating"].between(1, 5).all()


# ----------------------------------------------------------------------------------------------------------
# MMoE synthetic data
# ----------------------------------------------------------------------------------------------------------
def test_mmoe_shapes_dtypes():
    X, Y = make_mmoe_synthetic(n=500, p=0.3, d=20, seed=1)
    assert X.shape == (500, 20) and Y.shape == (500, 2)
    assert X.dtype == np.float32 and Y.dtype == np.float32
    assert np.isfinite(X).all() and np.isfinite(Y).all()


def test_mmoe_deterministic():
    a = make_mmoe_synthetic(n=300, p=0.5, seed=3)
    b = make_mmoe_synthetic(n=300, p=0.5, seed=3)
    c = make_mmoe_synthetic(n=300, p=0.5, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[1], c[1])


def test_mmoe_label_correlation_follows_p():
    corr = {p: label_correlation(make_mmoe_synthetic(n=20000, p=p, seed=0)[1]) for p in (0.0, 0.5, 0.9, 1.0)}
    assert corr[1.0] > 0.95
    assert abs(corr[0.0]) < 0.2
    assert corr[0.0] < corr[0.5] < corr[0.9] < corr[1.0]


def test_mmoe_weights_match_paper_construction():
    # with no sine terms and no noise, y_k = w_k^T x exactly: recover w_k and check |w_k| = c, cos = p
    c, p = 0.7, 0.35
    X, Y = make_mmoe_synthetic(n=400, p=p, d=10, c=c, m=0, noise=0.0, seed=2)
    W, *_ = np.linalg.lstsq(X.astype(np.float64), Y.astype(np.float64), rcond=None)
    norms = np.linalg.norm(W, axis=0)
    np.testing.assert_allclose(norms, [c, c], rtol=1e-4)
    np.testing.assert_allclose(W[:, 0] @ W[:, 1] / (c * c), p, atol=1e-4)


def test_mmoe_noise_scale():
    # y2 - y1 at p=1 is eps2 - eps1 ~ N(0, 2 noise^2)
    _, Y = make_mmoe_synthetic(n=20000, p=1.0, noise=0.1, seed=0)
    diff = Y[:, 1].astype(np.float64) - Y[:, 0]
    assert abs(diff.std() - 0.1 * np.sqrt(2)) < 0.01


@pytest.mark.parametrize("kwargs", [dict(p=1.5), dict(p=-1.01), dict(d=1), dict(n=0), dict(m=-1),
                                    dict(noise=-0.1), dict(c=0.0)])
def test_mmoe_validation(kwargs):
    with pytest.raises(ValueError, match="make_mmoe_synthetic"):
        make_mmoe_synthetic(**{"n": 10, **kwargs})


def test_label_correlation():
    rng = np.random.default_rng(0)
    Y = rng.standard_normal((1000, 2))
    Y[:, 1] += Y[:, 0]
    assert label_correlation(Y) == pytest.approx(np.corrcoef(Y.T)[0, 1])
    with pytest.raises(ValueError):
        label_correlation(np.zeros((10, 3)))


# ----------------------------------------------------------------------------------------------------------
# Criteo-like data
# ----------------------------------------------------------------------------------------------------------
N_CRITEO = 100_000


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum formula (ties get average ranks)."""
    ranks = pd.Series(score).rank().to_numpy()
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@pytest.fixture(scope="module")
def criteo():
    return make_criteo_like(N_CRITEO, seed=0)


def test_criteo_like_columns_dtypes(criteo):
    expected = [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)] + ["click", "purchase"]
    assert list(criteo.columns) == expected
    assert len(criteo) == N_CRITEO
    assert all(criteo[f"I{i}"].dtype == np.float32 for i in range(1, 14))
    assert all(criteo[f"C{i}"].dtype == np.int64 for i in range(1, 27))
    assert criteo["click"].dtype == np.int64 and criteo["purchase"].dtype == np.int64


def test_criteo_like_ids_within_vocab_and_zipf(criteo):
    sizes = ds.default_vocab_sizes(26)
    assert len(sizes) == 26 and sizes[0] == 10 and sizes[-1] == 30000
    assert 80_000 < sum(sizes) < 130_000
    for j, v in enumerate(sizes, start=1):
        col = criteo[f"C{j}"].to_numpy()
        assert col.min() >= 0 and col.max() < v
    # heavy head: in the largest field the top id is far more frequent than under a uniform draw
    top_share = criteo["C26"].value_counts(normalize=True).iloc[0]
    assert top_share > 50 / sizes[-1]
    # P(rank 1) of a Zipf(1.2) law truncated to 10 ids
    w = np.arange(1, 11) ** -1.2
    assert criteo["C1"].value_counts(normalize=True).iloc[0] == pytest.approx(w[0] / w.sum(), abs=0.01)


def test_criteo_like_dense(criteo):
    dense = criteo[[f"I{i}" for i in range(1, 14)]]
    nan_frac = dense.isna().to_numpy().mean()
    assert 0.04 < nan_frac < 0.06
    assert dense.isna().any().all()  # every dense column has gaps
    # some columns are count-like (non-negative integers with a long right tail)
    counts = [c for c in dense.columns if (dense[c].dropna() >= 0).all()
              and np.array_equal(dense[c].dropna(), np.floor(dense[c].dropna()))]
    assert len(counts) >= 4
    c = counts[0]
    assert dense[c].max() > 10 * dense[c].median()


def test_criteo_like_labels(criteo):
    click, purchase = criteo["click"].to_numpy(), criteo["purchase"].to_numpy()
    assert set(np.unique(click)) <= {0, 1} and set(np.unique(purchase)) <= {0, 1}
    assert (purchase <= click).all()  # purchase only after a click
    assert abs(click.mean() - 0.2) < 0.02
    cvr = purchase[click == 1].mean()
    assert 0.1 < cvr < 0.3
    assert np.corrcoef(click, purchase)[0, 1] > 0.2


def test_criteo_like_labels_are_learnable(criteo):
    # target-encode every sparse field on one half and score the other half: some field must carry signal
    half = N_CRITEO // 2
    click = criteo["click"].to_numpy()
    prior = click[:half].mean()
    best = 0.0
    for j, v in enumerate(ds.default_vocab_sizes(26), start=1):
        ids = criteo[f"C{j}"].to_numpy()
        hits = np.bincount(ids[:half], weights=click[:half], minlength=v)
        seen = np.bincount(ids[:half], minlength=v)
        rate = (hits + 10 * prior) / (seen + 10)  # smoothed per-id click rate
        best = max(best, _auc(click[half:], rate[ids[half:]]))
    assert best > 0.6


def test_criteo_like_deterministic_and_seeded():
    a = make_criteo_like(2000, seed=7)
    b = make_criteo_like(2000, seed=7)
    c = make_criteo_like(2000, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_criteo_like_options():
    df = make_criteo_like(20_000, n_dense=2, n_sparse=3, vocab_sizes=[5, 50, 500], ctr=0.05, cvr=0.5, seed=1)
    assert list(df.columns) == ["I1", "I2", "C1", "C2", "C3", "click", "purchase"]
    assert df["C1"].max() < 5 and df["C3"].max() < 500
    assert abs(df["click"].mean() - 0.05) < 0.01
    assert 0.4 < df["purchase"][df["click"] == 1].mean() < 0.6
    assert len(make_criteo_like(0)) == 0


@pytest.mark.parametrize("kwargs", [dict(n_rows=-1), dict(ctr=0.0), dict(ctr=1.0), dict(zipf_a=-1.0),
                                    dict(vocab_sizes=[10, 20]), dict(seed=-1)])
def test_criteo_like_validation(kwargs):
    args = {"n_rows": 10, **kwargs}
    with pytest.raises(ValueError):
        make_criteo_like(args.pop("n_rows"), **args)


def test_iter_criteo_like_chunks():
    chunks = list(iter_criteo_like(250_000, chunk_rows=100_000, seed=0))
    assert [len(c) for c in chunks] == [100_000, 100_000, 50_000]
    full = pd.concat(chunks)
    assert full.index.equals(pd.RangeIndex(250_000))
    one_shot = make_criteo_like(N_CRITEO, seed=0)
    for c in chunks:
        assert abs(c["click"].mean() - one_shot["click"].mean()) < 0.02
        assert abs(c["I1"].isna().mean() - one_shot["I1"].isna().mean()) < 0.01
        assert (c["purchase"] <= c["click"]).all()
    # same hidden function in every chunk: per-id click rates of the most frequent ids agree
    col = "C1"
    r0 = chunks[0].groupby(col)["click"].mean()
    r1 = chunks[1].groupby(col)["click"].mean()
    common = r0.index.intersection(r1.index)
    assert np.corrcoef(r0[common], r1[common])[0, 1] > 0.9 or r0[common].std() < 0.02
    # chunks are different draws
    assert not np.array_equal(chunks[0]["C26"].to_numpy()[:1000], chunks[1]["C26"].to_numpy()[:1000])
    # the first chunk of a stream equals make_criteo_like of that size
    pd.testing.assert_frame_equal(next(iter_criteo_like(5000, chunk_rows=5000, seed=3)),
                                  make_criteo_like(5000, seed=3))
    with pytest.raises(ValueError):
        iter_criteo_like(10, chunk_rows=0)


# ----------------------------------------------------------------------------------------------------------
# MovieLens 100K
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ml100k():
    return load_movielens_100k()


def test_movielens_100k(ml100k):
    df = ml100k
    assert len(df) == 100_000
    assert df["user_id"].nunique() == 943 and df["item_id"].nunique() == 1682
    assert list(df.columns) == ["user_id", "item_id", "rating", "timestamp", "age", "gender", "occupation",
                                "zip", "title", "genres"]
    assert df.notna().all().all()
    assert set(df["rating"].unique()) == {1, 2, 3, 4, 5}
    assert set(df["gender"].unique()) == {"M", "F"}
    first = df.iloc[0]  # u.data's first line: 196 242 3 881250949
    assert first[["user_id", "item_id", "rating", "timestamp"]].tolist() == [196, 242, 3, 881250949]
    assert first["title"] == "Kolya (1996)" and first["genres"] == "Comedy"
    toy = df.loc[df["item_id"] == 1].iloc[0]
    assert toy["title"] == "Toy Story (1995)" and toy["genres"] == "Animation|Children's|Comedy"
    user1 = df.loc[df["user_id"] == 1].iloc[0]
    assert user1[["age", "gender", "occupation", "zip"]].tolist() == [24, "M", "technician", "85711"]


def test_movielens_genres_from_u_genre(ml100k):
    names = [line.split("|")[0] for line in (ML_DIR / "u.genre").read_text(encoding="latin-1").splitlines()
             if line.strip()]
    assert tuple(names) == ds.ML100K_GENRES
    used = set("|".join(ml100k["genres"].unique()).split("|"))
    assert used <= set(names)
    assert ml100k["zip"].map(type).eq(str).all()


def test_movielens_sequences(ml100k):
    data = load_movielens_sequences(min_len=5)
    seqs = data["sequences"]
    assert data["num_items"] == 1682 and data["num_users"] == 943 == len(seqs)
    assert sum(len(s) for s in seqs.values()) == 100_000
    key = ml100k.set_index(["user_id", "item_id"])["timestamp"]
    for uid in (1, 13, 405, 943):
        seq = seqs[uid]
        assert seq.dtype == np.int64
        ts = key.loc[[(uid, i) for i in seq]].to_numpy()
        np.testing.assert_array_equal(ts, data["timestamps"][uid])
        assert (np.diff(ts) >= 0).all()  # time order
        ties = np.diff(ts) == 0
        assert (np.diff(seq)[ties] > 0).all()  # ties broken by item id
        assert set(seq) == set(ml100k.loc[ml100k["user_id"] == uid, "item_id"])


def test_movielens_sequences_min_len():
    data = load_movielens_sequences(min_len=300)
    assert 0 < len(data["sequences"]) < 943
    assert all(len(s) >= 300 for s in data["sequences"].values())
    with pytest.raises(ValueError):
        load_movielens_sequences(min_len=-1)
