import json

import pytest

from ctrkit import DenseFeat, SchemaError, SparseFeat, VarLenSparseFeat, get_feature_names
from ctrkit.features import check_feature_columns, feature_from_dict, feature_to_dict


def test_deepctr_signature_and_defaults():
    f = SparseFeat("user", 100)
    assert (f.embedding_dim, f.use_hash, f.dtype, f.embedding_name, f.group_name) == (
        4, False, "int32", "user", "default_group")
    # positional order as in DeepCTR-Torch
    g = SparseFeat("item", 50, 8, True, "string", "items", "g1")
    assert (g.embedding_dim, g.use_hash, g.embedding_name, g.group_name) == (8, True, "items", "g1")
    assert SparseFeat("x", 10000, embedding_dim="auto").embedding_dim == 6 * int(10000 ** 0.25)


def test_frozen_and_json_round_trip():
    cols = [SparseFeat("a", 10, 4), DenseFeat("b", 3), VarLenSparseFeat(SparseFeat("c", 7, 4), 5, "max", "c_len")]
    with pytest.raises(Exception):
        cols[0].vocabulary_size = 3
    back = [feature_from_dict(json.loads(json.dumps(feature_to_dict(f)))) for f in cols]
    assert back == cols


def test_varlen_forwards_attributes_and_feature_names():
    v = VarLenSparseFeat(SparseFeat("genres", 20, 6, embedding_name="g"), maxlen=4, length_name="glen")
    assert (v.name, v.vocabulary_size, v.embedding_dim, v.embedding_name) == ("genres", 20, 6, "g")
    assert get_feature_names([SparseFeat("a", 3), v, DenseFeat("d")]) == ["a", "genres", "glen", "d"]


@pytest.mark.parametrize("make, text", [
    (lambda: SparseFeat("a", 0), "vocabulary_size must be an int >= 1, got 0"),
    (lambda: SparseFeat("", 3), "name must be a non-empty str"),
    (lambda: DenseFeat("d", 0), "dimension must be an int >= 1"),
    (lambda: VarLenSparseFeat(SparseFeat("v", 3), 0), "maxlen must be an int >= 1"),
    (lambda: VarLenSparseFeat(SparseFeat("v", 3), 2, combiner="avg"), "combiner must be one of"),
])
def test_invalid_specs_name_the_feature(make, text):
    with pytest.raises(SchemaError, match=text):
        make()


def test_duplicates_and_shared_dims():
    with pytest.raises(SchemaError, match="duplicate feature name 'a'"):
        check_feature_columns([SparseFeat("a", 3), SparseFeat("a", 4)])
    # the same spec repeated (DeepCTR's linear + dnn columns) is fine
    assert len(check_feature_columns([SparseFeat("a", 3), SparseFeat("a", 3)])) == 1
    with pytest.raises(SchemaError, match="share embedding_name 'e'"):
        check_feature_columns([SparseFeat("a", 3, 4, embedding_name="e"), SparseFeat("b", 3, 8, embedding_name="e")])
