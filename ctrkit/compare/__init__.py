"""Side-by-side comparisons of models under one budget: the tabular multi-task comparison (the MMoE paper's
experiments, on any data; :mod:`ctrkit.compare.tabular`) and the next-item one, SASRec vs FAME on
MovieLens-100K (:mod:`ctrkit.compare.sequential`). ``ctrkit compare`` (:mod:`ctrkit.cli`) wraps both.

What a comparison knows about particular models (how to size PLE or ESMM like MMoE, which models join only on
request) lives here, in :data:`~ctrkit.compare.tabular.MODEL_SETTINGS`, not in the model classes.
"""
from __future__ import annotations

from .inputs import INPUT_PRESETS, choose_inputs, input_candidates
from .report import format_sweep, format_table, inputs_line, write_report, write_sweep_report
from .tabular import (
                      MODEL_SETTINGS,
                      ON_REQUEST,
                      PAPER_CENSUS,
                      CompareConfig,
                      ComparisonResult,
                      PreparedData,
                      SweepResult,
                      config_dict,
                      match_width,
                      mmoe_variants,
                      prepare_census,
                      prepare_frame_data,
                      prepare_synthetic,
                      run_comparison,
                      run_synthetic_sweep,
                      summarise,
)

__all__ = ["CompareConfig", "ComparisonResult", "run_comparison", "prepare_frame_data", "prepare_census",
           "prepare_synthetic", "match_width", "PAPER_CENSUS", "MODEL_SETTINGS", "ON_REQUEST", "PreparedData",
           "SweepResult", "config_dict", "format_sweep", "format_table", "mmoe_variants", "summarise",
           "write_report", "write_sweep_report", "run_synthetic_sweep", "INPUT_PRESETS", "choose_inputs",
           "input_candidates", "inputs_line"]
