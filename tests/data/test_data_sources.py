"""In-memory data as a data source (ctrkit.data.ArraySource): the same batches as the trainer's in-memory path."""
import pytest
import torch

from ctrkit.data import ArraySource, DataSource, TensorData
from ctrkit.data.source import epoch_permutation, mix_seed
from ctrkit.exceptions import DataValidationError


def _source(n=103, weights=True):
    ids = torch.arange(n, dtype=torch.int64)
    x = TensorData(torch.stack([ids, ids * 2], 1), ids.float().view(n, 1) / 10,
                   {"v": ids.view(n, 1).repeat(1, 3)}, {})
    y = torch.stack([ids.float(), -ids.float()], 1)
    w = ids.float() + 0.5 if weights else None
    return ArraySource(x, y, w, task_names=["a", "b"]), x, y, w


def _rows(batches):
    return torch.cat([b[0].sparse[:, 0] for b in batches]).tolist()


def test_is_a_data_source_with_the_store_interface():
    src, _, y, _ = _source()
    assert isinstance(src, DataSource) and len(src) == 103
    assert src.has_sample_weight and not src.has_nan_labels and src.labels() is y
    assert src.shard_range(1, 2) == (51, 103)
    assert src.steps_per_epoch(10, 2) == 5   # 51 rows per rank: a last batch of one row is merged (5 x 10 + 1)
    assert src.steps_per_epoch(10, 1) == 11 and src.steps_per_epoch(16, 1) == 7


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_row_once_per_epoch_and_last_batch_takes_the_rest(shuffle):
    src, _, _, _ = _source()
    batches = list(src.batches(10, shuffle=shuffle, seed=3, epoch=1))
    assert [len(b[1]) for b in batches] == [10] * 10 + [3]
    assert sorted(_rows(batches)) == list(range(103))
    for x, y, w in batches:  # features, labels and weights stay aligned
        assert torch.equal(x.sparse[:, 0].float(), y[:, 0]) and torch.equal(y[:, 0] + 0.5, w)
        assert torch.equal(x.varlen["v"][:, 0], x.sparse[:, 0])
    if not shuffle:
        assert _rows(batches) == list(range(103))


def test_batches_are_views_of_the_columnar_tensors():
    src, x, y, _ = _source()
    xb, yb, wb = next(iter(src.batches(10, shuffle=False)))
    assert xb.sparse.data_ptr() == x.sparse.data_ptr() and yb.data_ptr() == y.data_ptr()
    xb, yb, _ = list(src.batches(10, shuffle=False))[3]
    assert xb.sparse.untyped_storage().data_ptr() == x.sparse.untyped_storage().data_ptr()


def test_epoch_order_is_one_permutation_then_consecutive_slices():
    """The order the trainer has always used for arrays in memory: one permutation of the rows per epoch, a
    function of (seed, epoch, rank) only, then consecutive batches, the last taking the rows left over."""
    src, x, y, w = _source()
    for seed, epoch in [(0, 0), (7, 2), (123, 5)]:
        perm = torch.randperm(103, generator=torch.Generator().manual_seed(mix_seed(seed, epoch, 0)))
        assert torch.equal(epoch_permutation(103, seed, epoch, 0), perm)
        bounds = [(s, s + 16) for s in range(0, 96, 16)] + [(96, 103)]
        got = list(src.batches(16, seed=seed, epoch=epoch))
        assert len(got) == len(bounds) == -(-103 // 16)
        for (s, e), (xg, yg, wg) in zip(bounds, got):
            rows = perm[s:e]
            assert torch.equal(x.sparse[rows], xg.sparse) and torch.equal(x.dense[rows], xg.dense)
            assert torch.equal(x.varlen["v"][rows], xg.varlen["v"])
            assert torch.equal(y[rows], yg) and torch.equal(w[rows], wg)


def test_order_depends_only_on_seed_epoch_rank_and_resumes_at_start_step():
    src, _, _, _ = _source()
    full = _rows(src.batches(10, seed=5, epoch=3))
    assert full == _rows(src.batches(10, seed=5, epoch=3))
    assert full != _rows(src.batches(10, seed=5, epoch=4)) and full != _rows(src.batches(10, seed=6, epoch=3))
    for k in (1, 4, 10):
        assert _rows(src.batches(10, seed=5, epoch=3, start_step=k)) == full[k * 10:]
    assert list(src.batches(10, seed=5, epoch=3, start_step=11)) == []


def test_shards_are_disjoint_and_cover_the_rows():
    src, _, _, _ = _source(weights=False)
    seen = []
    for rank in range(3):
        b = list(src.batches(8, seed=1, rank=rank, world_size=3))
        assert len(b) == src.steps_per_epoch(8, 3) and b[0][2] is None
        lo, hi = src.shard_range(rank, 3)
        rows = _rows(b)
        assert sorted(rows) == list(range(lo, hi))
        seen += rows
    assert sorted(seen) == list(range(103))


def test_iter_range_and_read():
    src, _, _, _ = _source()
    b = list(src.iter_range(20, 45, 10))
    assert [len(p[1]) for p in b] == [10, 10, 5] and _rows(b) == list(range(20, 45))
    x, y, w = src.read(5, 8)
    assert x.sparse[:, 0].tolist() == [5, 6, 7] and y.shape == (3, 2) and w.shape == (3,)


def test_bad_arguments_are_clear():
    src, x, y, _ = _source()
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        src.batches(0)
    with pytest.raises(DataValidationError, match="103 feature rows but 5 label rows"):
        ArraySource(x, y[:5])
    with pytest.raises(TypeError, match="TensorData"):
        ArraySource({"a": 1}, y)
    nan = y.clone()
    nan[0, 1] = float("nan")
    assert ArraySource(x, nan).has_nan_labels


def test_data_and_preprocessing_import_only_lower_layers():
    import ast
    import pathlib
    root = pathlib.Path(__file__).resolve().parents[2] / "ctrkit"
    allowed = {"data": {"preprocessing", "features", "exceptions", "_version", "registry", "datasets"},
               "preprocessing": {"features", "exceptions", "_version", "registry"}}
    for pkg, ok in allowed.items():
        for py in (root / pkg).glob("*.py"):
            for node in ast.walk(ast.parse(py.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level == 2:
                    assert (node.module or "").split(".")[0] in ok, (py.name, node.module)
