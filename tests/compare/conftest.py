import pandas as pd
import pytest
import torch


@pytest.fixture(scope="package")
def census_head():
    """The first 4,000 rows of census group 1 as a comparison's prepared data (80/10/10 split)."""
    from ctrkit.compare import prepare_frame_data
    from ctrkit.datasets import census_feature_types, load_census_income
    torch.set_num_threads(1)
    X, y = load_census_income(group=1)
    df = pd.concat([X, y], axis=1).iloc[:4000]
    sparse, dense = census_feature_types()
    return prepare_frame_data(df, ["income", "marital"], sparse=sparse, dense=dense, name="census[:4000]")
