"""Training configs for ``ctrkit train``: TOML / YAML / JSON files validated against dataclasses.

A config has six sections (only ``[data]``, ``[tasks]`` and ``[model]`` are required)::

    extends = "base.toml"          # optional: a base config (relative to this file), merged under this one

    [data]
    train = "train.parquet"        # csv / parquet (relative to the config file), or "census:1" / "census:2"
    validation = "valid.csv"       # optional; without it ``split`` cuts the train file
    test = "test.csv"              # optional
    split = [0.8, 0.1, 0.1]        # fractions of ``train`` for train / validation (/ test), if no validation

    [features]                     # column roles; omitted: inferred from the dtypes (labels excluded)
    sparse = ["user_id", "city"]
    dense = ["age"]
    varlen = { genres = { sep = "|", maxlen = 5 } }

    [tasks]                        # label column = task name -> "binary" | "regression"
    click = "binary"

    [model]
    name = "MMoE"
    args = { num_experts = 4, expert_dnn_hidden_units = [32] }

    [training]
    epochs = 10
    early_stopping = { monitor = "val_auc", patience = 2 }   # one task: Keras' key

    [output]
    dir = "runs/mmoe"              # relative to the current directory

Every key is checked: an unknown key is an error that names the section and suggests the closest valid key
("Unknown key 'lerning_rate' in [training]. Did you mean 'learning_rate'?"). ``extends`` chains merge
tables key by key (the extending file wins; lists and scalars are replaced). Values are never evaluated as
code, and ``[model].args`` is checked against the model's constructor.

Example:
    >>> cfg = config_from_dict({"data": {"train": "census:1"}, "tasks": {"income": "binary"},
    ...                         "model": {"name": "DNN", "args": {"dnn_hidden_units": [16]}}})
    >>> cfg.training.epochs, cfg.model.name, cfg.tasks
    (10, 'DNN', {'income': 'binary'})
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import typing
from dataclasses import dataclass, field
from typing import Any, Union

from ..exceptions import CtrkitError, suggest

__all__ = ["ConfigError", "TrainConfig", "DataConfig", "FeaturesConfig", "VarLenConfig", "ModelConfig",
           "TrainingConfig", "EarlyStoppingConfig", "OutputConfig", "load_config", "config_from_dict",
           "config_to_dict", "read_config_file"]


class ConfigError(CtrkitError, ValueError):
    """A config file is unreadable, has an unknown key, or a value of the wrong type or range."""


@dataclass
class DataConfig:
    """``[data]``: where the rows come from.

    Args:
        train: a ``.csv`` / ``.csv.gz`` / ``.tsv`` / ``.parquet`` file (relative paths are relative to the config
            file), or ``"census:1"`` / ``"census:2"`` for the bundled Census-Income data with the MMoE paper's
            task group 1 (``income``, ``marital``) or 2 (``education``, ``marital``).
        validation: an optional validation file; when absent, ``split`` cuts ``train``.
        test: an optional test file (evaluated after training, and used for the plots).
        split: fractions of ``train`` for train / validation (/ test), used only when ``validation`` is None;
            they must sum to 1. Default ``[0.8, 0.1, 0.1]``, or ``[0.9, 0.1]`` when a ``test`` file is given.
        seed: the seed of the split's permutation.
        sep: the CSV separator (default: ``","``, or tab for ``.tsv``).
        max_rows: read only the first ``max_rows`` rows of each file (quick runs).
    """

    train: str
    validation: Union[str, None] = None
    test: Union[str, None] = None
    split: Union[list[float], None] = None
    seed: int = 2024
    sep: Union[str, None] = None
    max_rows: Union[int, None] = None


@dataclass
class VarLenConfig:
    """One var-length column: ``sep`` between values, ``maxlen`` (None: the longest list at fit)."""

    sep: str = "|"
    maxlen: Union[int, None] = None


@dataclass
class FeaturesConfig:
    """``[features]``: column roles and :class:`~ctrkit.FeatureEncoder` options.

    With ``sparse``, ``dense`` and ``varlen`` all omitted, every column except the task labels and ``ignore``
    is used, typed from its dtype (see :func:`ctrkit.preprocessing.infer_column_types`).
    """

    sparse: Union[list[str], None] = None
    dense: Union[list[str], None] = None
    varlen: dict[str, VarLenConfig] = field(default_factory=dict)
    ignore: list[str] = field(default_factory=list)
    embedding_dim: Union[int, str] = 8
    min_freq: int = 1
    max_vocab: Union[int, None] = None
    hash_buckets: Union[int, dict[str, int], None] = None
    scaling: Union[str, None] = "standard"
    combiner: str = "mean"


@dataclass
class ModelConfig:
    """``[model]``: a registered model's name and its constructor arguments (feature columns, tasks, seed and
    device are filled in by ``ctrkit train``)."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class EarlyStoppingConfig:
    """``[training.early_stopping]``: see :class:`~ctrkit.EarlyStopping`."""

    monitor: str = "val_loss"
    patience: int = 2
    min_delta: float = 0.0
    mode: str = "auto"
    restore_best_weights: bool = True


@dataclass
class TrainingConfig:
    """``[training]``: ``compile`` and ``fit`` arguments.

    Args:
        epochs, batch_size: as in ``fit``.
        optimizer, learning_rate, loss, metrics, loss_weights, grad_clip_norm, task_balancer, init_output_bias,
            group_by: as in ``compile`` (``group_by``: the column of the grouped metrics, e.g. ``gauc``)
            (``learning_rate`` is its ``lr``; ``metrics`` default: ``auc`` and ``logloss`` for binary tasks,
            ``mse`` and ``mae`` for regression).
        early_stopping: an :class:`EarlyStoppingConfig` table, or absent for none.
        weight_averaging: validate and keep a moving average of the weights with this decay in (0, 1)
            (:class:`~ctrkit.callbacks.WeightAveraging`, e.g. 0.995), or absent for the raw weights.
        seed: seeds the weights, the shuffling and dropout.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        sharding, embedding_optimizer, embedding_lr: for a model with ``embedding_backend = "torchrec"`` in
            ``[model.args]``: as in ``compile`` (docs/sharding.md). ``ctrkit train`` runs in one process.
        baselines: reference models trained per binary / regression task on the same encoded training rows and
            scored on the same test (or validation) rows, written next to the model's metrics: ``"lr"``
            (one-hot logistic regression), ``"gbdt"`` (gradient-boosted trees); ``[]`` for none
            (:mod:`ctrkit.compare.baselines`).
    """

    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "adam"
    learning_rate: Union[float, None] = 1e-3
    loss: Union[str, dict[str, str], None] = None
    metrics: Union[list[str], None] = None
    loss_weights: Union[dict[str, float], None] = None
    grad_clip_norm: Union[float, None] = None
    task_balancer: Union[str, None] = None
    init_output_bias: bool = True
    group_by: Union[str, None] = None
    sharding: Union[str, dict[str, str], None] = None
    embedding_optimizer: Union[str, None] = None
    embedding_lr: Union[float, None] = None
    early_stopping: Union[EarlyStoppingConfig, None] = None
    weight_averaging: Union[float, None] = None
    seed: Union[int, None] = 2024
    device: str = "cpu"
    verbose: int = 2
    baselines: list[str] = field(default_factory=lambda: ["lr", "gbdt"])


@dataclass
class OutputConfig:
    """``[output]``: ``dir`` (relative to the current directory; ``ctrkit train --out`` overrides it) and
    whether to write the PNG plots (needs matplotlib)."""

    dir: str = "ctrkit-run"
    plots: bool = True


@dataclass
class TrainConfig:
    """A whole ``ctrkit train`` config. ``tasks`` maps each label column (= task name) to its type."""

    data: DataConfig
    tasks: dict[str, str]
    model: ModelConfig
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    #: the directory relative data paths are resolved against (the config file's); not a config key
    base_dir: str = field(default=".", metadata={"internal": True})


# ------------------------------------------------------------------------------------------ validation
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a table of {_type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {type(None): "none", bool: "true/false", int: "an integer", float: "a number", str: "a string",
            Any: "any value"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, where: str) -> Any:
    """``value`` checked against the annotation ``tp`` (and converted: int -> float, table -> dataclass)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin is Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, where)
            except ConfigError as e:
                errors.append(e)
        raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}.")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}.")
        (inner,) = typing.get_args(tp)
        return [_convert(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be {_type_name(tp)}, got {value!r}.")
        _, inner = typing.get_args(tp)
        return {str(k): _convert(v, inner, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}.")
        return _build(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}.")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}.")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}.")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}.")
        return value
    raise ConfigError(f"{where}: unsupported type {tp!r}.")  # pragma: no cover


def _build(cls: Any, d: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    section = f"[{where}]" if where else "the top level"
    for k in d:
        if k not in fields:
            raise ConfigError(f"Unknown key {k!r} in {section}.{suggest(k, fields)} Valid keys: {sorted(fields)}.")
    kwargs = {}
    for name, f in fields.items():
        key = f"{where}.{name}" if where else name
        if name in d:
            kwargs[name] = _convert(d[name], hints[name], key)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"Missing required key {name!r} in {section}.")
    return cls(**kwargs)


def _check_values(cfg: TrainConfig) -> None:
    from ..training.tasks import TASK_TYPES
    if not cfg.tasks:
        raise ConfigError("[tasks] is empty: name at least one label column and its type, e.g. click = \"binary\".")
    for t, typ in cfg.tasks.items():
        if typ not in TASK_TYPES:
            raise ConfigError(f"[tasks].{t} must be one of {list(TASK_TYPES)}, got {typ!r}.{suggest(typ, TASK_TYPES)}")
    d, tr = cfg.data, cfg.training
    if d.validation is None:
        if d.split is None:
            d.split = [0.9, 0.1] if d.test is not None else [0.8, 0.1, 0.1]
        if len(d.split) not in (2, 3) or any(not 0 <= v <= 1 for v in d.split) or abs(sum(d.split) - 1) > 1e-6:
            raise ConfigError(f"[data].split must be 2 or 3 fractions in [0, 1] that sum to 1 (train, validation[, "
                              f"test]), got {d.split}.")
        if len(d.split) == 3 and d.split[2] > 0 and d.test is not None:
            raise ConfigError("[data]: both a test file and a 3-way split were given. Use split = [train, "
                              "validation] with test = FILE, or drop test.")
    if d.max_rows is not None and d.max_rows < 10:
        raise ConfigError(f"[data].max_rows must be >= 10, got {d.max_rows}.")
    from ..compare.baselines import parse_baselines
    try:
        tr.baselines = list(parse_baselines(tr.baselines or "none"))
    except ValueError as e:
        raise ConfigError(f"[training].baselines: {e}") from None
    for key, v, lo in (("training.epochs", tr.epochs, 1), ("training.batch_size", tr.batch_size, 1),
                       ("training.verbose", tr.verbose, 0)):
        if v < lo:
            raise ConfigError(f"[{key.split('.')[0]}].{key.split('.')[1]} must be >= {lo}, got {v}.")
    if tr.verbose > 2:
        raise ConfigError(f"[training].verbose must be 0, 1 or 2, got {tr.verbose}.")
    if tr.learning_rate is not None and not tr.learning_rate > 0:
        raise ConfigError(f"[training].learning_rate must be > 0, got {tr.learning_rate}.")
    if tr.weight_averaging is not None and not 0.0 < tr.weight_averaging < 1.0:
        raise ConfigError(f"[training].weight_averaging must be a decay in (0, 1), e.g. 0.995, got "
                          f"{tr.weight_averaging}; leave it out for the raw weights.")
    if tr.early_stopping is not None and tr.early_stopping.patience < 0:
        raise ConfigError(f"[training.early_stopping].patience must be >= 0, got {tr.early_stopping.patience}.")
    if cfg.features.scaling not in ("standard", "minmax", None):
        raise ConfigError(f"[features].scaling must be 'standard', 'minmax' or none, got {cfg.features.scaling!r}.")
    labels = set(cfg.tasks)
    roles = (cfg.features.sparse or []) + (cfg.features.dense or []) + list(cfg.features.varlen)
    clash = sorted(labels & set(roles))
    if clash:
        raise ConfigError(f"[features]: label column(s) {clash} are also listed as features. A task's label cannot "
                          "be an input.")


def config_from_dict(d: dict[str, Any], base_dir: str = ".") -> TrainConfig:
    """Validate a config dict (already merged with its ``extends`` bases) and build the :class:`TrainConfig`."""
    if not isinstance(d, dict):
        raise ConfigError(f"A config must be a table of sections, got {type(d).__name__}.")
    d = {k: v for k, v in d.items() if k != "extends"}
    cfg = _build(TrainConfig, d, "")
    cfg.base_dir = os.path.abspath(base_dir)
    _check_values(cfg)
    return cfg


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """The config as plain data (every default filled in), e.g. to write next to the trained model."""
    out = dataclasses.asdict(cfg)
    out.pop("base_dir", None)
    return out


# ------------------------------------------------------------------------------------------ files
def read_config_file(path: str) -> dict[str, Any]:
    """Parse one TOML (``.toml``), YAML (``.yaml`` / ``.yml``, needs PyYAML) or JSON (``.json``) file."""
    if not os.path.isfile(path):
        raise ConfigError(f"Config file {path!r} does not exist.")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                try:
                    import tomli as tomllib
                except ImportError:
                    raise ConfigError("Reading TOML on Python 3.10 needs tomli: pip install tomli (it is "
                                      "tomllib's backport), or write the config as JSON.") from None
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        elif ext in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise ConfigError(f"{path!r} is YAML, which needs PyYAML: pip install pyyaml (or "
                                  "'ctrkit[yaml]'), or write the config as TOML.") from None
            with open(path) as fh:
                data = yaml.safe_load(fh)
            if data is None:
                data = {}
        elif ext == ".json":
            with open(path) as fh:
                data = json.load(fh)
        else:
            raise ConfigError(f"Config file {path!r}: unknown extension {ext!r}; use .toml, .yaml / .yml or .json.")
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - a parser error of any of the three libraries
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"Config file {path!r} could not be parsed: {msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path!r} must hold a table of sections, got {type(data).__name__}.")
    return data


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _resolve_extends(path: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    path = os.path.abspath(path)
    if path in seen:
        chain = " -> ".join(os.path.basename(p) for p in (*seen, path))
        raise ConfigError(f"Config files extend each other in a cycle: {chain}.")
    data = read_config_file(path)
    base = data.get("extends")
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"{os.path.basename(path)}: extends must be a path string, got {base!r}.")
    base_path = base if os.path.isabs(base) else os.path.join(os.path.dirname(path), base)
    if not os.path.isfile(base_path):
        raise ConfigError(f"{os.path.basename(path)}: extends = {base!r}, but {base_path!r} does not exist "
                          "(relative paths are relative to the extending file).")
    merged = _merge(_resolve_extends(base_path, (*seen, path)), data)
    merged.pop("extends", None)
    return merged


def load_config(path: str) -> TrainConfig:
    """Read, merge (``extends``) and validate a config file.

    Raises:
        ConfigError: unreadable file, unknown key (with a suggestion), wrong type or value.
    """
    return config_from_dict(_resolve_extends(path), base_dir=os.path.dirname(os.path.abspath(path)))
