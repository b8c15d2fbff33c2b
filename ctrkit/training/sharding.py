"""Sharded embedding tables: a model built with ``embedding_backend="torchrec"``, handed to TorchRec.

``compile`` calls :func:`shard_tables` for such a model. It joins the process group (torchrun's, or a
one-process group of its own), lets TorchRec's planner place every table (``table_wise``, ``row_wise``,
``column_wise``, ... as the user allows per table), and wraps the model in TorchRec's
``DistributedModelParallel``: each process creates only its own shards of the tables, the dense part is
data-parallel (DDP), and the tables are updated by TorchRec's fused optimizer inside the backward pass (so no
gradient tensor of a table ever exists). The Trainer then runs the same loop as for any model: the forward it
calls is the DistributedModelParallel, its optimizer holds the dense parameters only.

:func:`gather_model` turns a sharded model into an ordinary one (``embedding_backend="native"``, the tables
gathered from every process): what ``save``, ``export_onnx`` and serving use, so they never need TorchRec.
:func:`tables_state` / :func:`load_tables` are the sharded part of a
:class:`~ctrkit.callbacks.BackupAndRestore` checkpoint, written with ``torch.distributed.checkpoint`` (each process
writes its own shards).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["is_torchrec", "is_sharded", "shard_tables", "sharding_plan", "local_table_rows", "gather_state_dict",
           "tables_state", "load_tables", "SHARDING_TYPES", "EMBEDDING_OPTIMIZERS"]

#: sharding types a table may be given (TorchRec's names)
SHARDING_TYPES = ("table_wise", "row_wise", "column_wise", "table_row_wise", "table_column_wise", "data_parallel")
#: the tables' fused optimizers that TorchRec's CPU kernels have (``adam`` too on CUDA)
EMBEDDING_OPTIMIZERS = ("sgd", "adagrad", "rowwise_adagrad", "adam")
_OPT_NAMES = {"sgd": "EXACT_SGD", "adagrad": "EXACT_ADAGRAD", "rowwise_adagrad": "EXACT_ROWWISE_ADAGRAD",
              "adam": "ADAM"}
_TABLE_PREFIX = "embedding.ebc."


def _layer(model: Any) -> Any:
    return getattr(model, "embedding", None)


def is_torchrec(model: Any) -> bool:
    """Whether ``model``'s tables are held by TorchRec (``embedding_backend="torchrec"``)."""
    return getattr(_layer(model), "backend", "native") == "torchrec"


def is_sharded(model: Any) -> bool:
    """Whether ``model`` has been handed to TorchRec's ``DistributedModelParallel`` (by ``compile``)."""
    return is_torchrec(model) and _layer(model).__dict__.get("dmp") is not None


def _ensure_process_group(model: Any) -> tuple[int, int]:
    import torch.distributed as dist

    from .. import distributed as D
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        info = D.init_from_env(device=model.device)
        return info.rank, info.world_size
    # one process: a process group of one, so the model runs through the same sharded modules
    backend = "nccl" if model.device.type == "cuda" else "gloo"
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    return 0, 1


def _constraints(model: Any, sharding: Any, tables: dict[str, list[str]]) -> dict[str, Any]:
    """``sharding``: None (the planner chooses), one type (or list of types) for every table, or a mapping from
    table (``embedding_name``) or feature name to type(s); ``"*"`` names the other tables."""
    from torchrec.distributed.planner.types import ParameterConstraints
    name = type(model).__name__

    def types(v: Any, where: str) -> list[str]:
        vs = [v] if isinstance(v, str) else list(v)
        bad = [t for t in vs if t not in SHARDING_TYPES]
        if bad or not vs:
            raise ValueError(f"{name}.compile: sharding{where} = {v!r}; each sharding type must be one of "
                             f"{list(SHARDING_TYPES)}.")
        return vs

    if sharding is None:
        return {}
    if isinstance(sharding, (str, list, tuple)):
        ts = types(sharding, "")
        return {t: ParameterConstraints(sharding_types=ts) for t in tables}
    if not isinstance(sharding, Mapping):
        raise TypeError(f"{name}.compile: sharding must be None, a sharding type, or {{table or feature: type}}; "
                        f"got {type(sharding).__name__}.")
    by_feature = {f: t for t, fs in tables.items() for f in fs}
    out: dict[str, Any] = {}
    for key, v in sharding.items():
        if key == "*":
            continue
        table = key if key in tables else by_feature.get(key)
        if table is None:
            raise ValueError(f"{name}.compile: sharding names {key!r}, which is neither a table nor a feature of the "
                             f"model. Tables (embedding_name): {sorted(tables)}.")
        out[table] = ParameterConstraints(sharding_types=types(v, f"[{key!r}]"))
    if "*" in sharding:
        rest = types(sharding["*"], "['*']")
        for t in tables:
            out.setdefault(t, ParameterConstraints(sharding_types=rest))
    return out


def _embedding_optimizer(model: Any, optimizer: Any, embedding_optimizer: str | None, lr: float | None,
                         embedding_lr: float | None) -> tuple[str, float]:
    """The tables' fused optimizer and learning rate. Default: the dense optimizer where TorchRec's kernels for
    the device have it (``sgd``, ``adagrad``; ``adam`` on CUDA), else ``rowwise_adagrad``."""
    name = type(model).__name__
    cuda = model.device.type == "cuda"
    if embedding_optimizer is None:
        dense = optimizer.lower() if isinstance(optimizer, str) else ""
        embedding_optimizer = dense if dense in ("sgd", "adagrad") or (dense == "adam" and cuda) else "rowwise_adagrad"
    key = str(embedding_optimizer).lower()
    if key not in EMBEDDING_OPTIMIZERS or (key == "adam" and not cuda):
        have = [k for k in EMBEDDING_OPTIMIZERS if cuda or k != "adam"]
        raise ValueError(f"{name}.compile: embedding_optimizer={embedding_optimizer!r} is not one TorchRec's fused "
                         f"kernels on {model.device.type} have; choose one of {have}.")
    if embedding_lr is None:
        # row-wise / exact Adagrad divide by the accumulated squared gradients: they want a larger step than
        # Adam; SGD and Adam take the dense learning rate
        base = 1e-3 if lr is None else float(lr)
        embedding_lr = base if key in ("sgd", "adam") else max(base, 0.05)
    if not float(embedding_lr) > 0:
        raise ValueError(f"{name}.compile: embedding_lr must be > 0, got {embedding_lr!r}.")
    return key, float(embedding_lr)


def shard_tables(model: Any, *, sharding: Any = None, optimizer: Any = "adam", lr: float | None = None,
                 embedding_optimizer: str | None = None, embedding_lr: float | None = None) -> Any:
    """Hand ``model`` (built with ``embedding_backend="torchrec"``) to TorchRec's ``DistributedModelParallel``.

    Called by ``compile``; a model is sharded once (compiling again keeps its plan and its tables).

    Args:
        sharding: None (TorchRec's planner chooses), a sharding type for every table (``"table_wise"``,
            ``"row_wise"``, ``"column_wise"``, ...; a list allows several), or ``{table or feature: type(s)}`` with
            ``"*"`` for the rest.
        optimizer, lr: the compile's optimizer and learning rate (for the default of the tables' optimizer).
        embedding_optimizer: the tables' fused optimizer: ``"sgd"``, ``"adagrad"``, ``"rowwise_adagrad"``
            (``"adam"`` on CUDA). Default: the dense optimizer where the kernels have it, else ``"rowwise_adagrad"``.
        embedding_lr: its learning rate (default: ``lr`` for sgd / adam, ``max(lr, 0.05)`` for the Adagrads).

    Returns:
        the ``DistributedModelParallel`` wrapping ``model`` (the forward the Trainer calls).
    """
    emb = _layer(model)
    if not is_torchrec(model):
        raise ValueError(f"{type(model).__name__}: shard_tables needs a model built with embedding_backend='torchrec'.")
    if emb.__dict__.get("dmp") is not None:
        spec = emb.__dict__["shard_spec"]
        if sharding is not None and sharding != spec["sharding"]:
            raise ValueError(f"{type(model).__name__}.compile: the model's tables are already sharded with "
                             f"sharding={spec['sharding']!r}; they cannot be re-planned. Build a new model to "
                             "shard differently.")
        return emb.__dict__["dmp"]
    from fbgemm_gpu.split_embedding_configs import EmbOptimType
    from torchrec.distributed.model_parallel import DistributedModelParallel
    from torchrec.distributed.planner import EmbeddingShardingPlanner, Topology

    from ..data.source import mix_seed
    rank, world = _ensure_process_group(model)
    tables = {c.name: list(c.feature_names) for c in emb.table_configs}
    constraints = _constraints(model, sharding, tables)
    opt_key, opt_lr = _embedding_optimizer(model, optimizer, embedding_optimizer, lr, embedding_lr)
    device = model.device
    sharder = _Sharder(fused_params={"optimizer": getattr(EmbOptimType, _OPT_NAMES[opt_key]),
                                     "learning_rate": opt_lr})
    import torch.distributed as dist

    from ..distributed import quiet_torchrec
    with quiet_torchrec():
        planner = EmbeddingShardingPlanner(topology=_topology(Topology, world, device), constraints=constraints)
        plan = planner.collective_plan(model, [sharder], dist.GroupMember.WORLD)
        with torch.random.fork_rng(devices=[]):   # each rank initialises its own shards, from the model's seed
            torch.manual_seed(mix_seed(int(model.seed if model.seed is not None else 0), rank))
            dmp = DistributedModelParallel(model, device=device, plan=plan, sharders=[sharder])
    emb.__dict__.update(dmp=dmp, shard_spec={"sharding": sharding, "embedding_optimizer": opt_key,
                                             "embedding_lr": opt_lr, "world_size": world})
    emb.equal_batches = world > 1
    return dmp


def _topology(Topology: Any, world: int, device: torch.device) -> Any:
    """TorchRec's view of the processes: on the CPU their memory is the machine's, shared by the local ones."""
    if device.type == "cuda":
        return Topology(world_size=world, compute_device="cuda")
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        total = 16 << 30
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", world) or world))
    cap = total // local
    return Topology(world_size=world, compute_device="cpu", hbm_cap=cap, ddr_cap=cap)


def _sharder_class() -> type:
    from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder

    class Sharder(EmbeddingBagCollectionSharder):
        """TorchRec's sharder, with row-wise (and table-row-wise) sharding offered on the CPU too: its all-to-all
        and reduce-scatter run on gloo when every process looks up a batch of the same size, which the
        :class:`~ctrkit.layers.torchrec_embedding.TorchRecEmbeddingLayer` ensures (``equal_batches``)."""

        def sharding_types(self, compute_device_type: str) -> list[str]:
            types = list(super().sharding_types(compute_device_type))
            if compute_device_type == "cpu":
                types += [t for t in ("row_wise", "table_row_wise") if t not in types]
            return types

    return Sharder


def _Sharder(**kwargs: Any) -> Any:
    return _sharder_class()(**kwargs)


def sharding_plan(model: Any) -> dict[str, dict[str, Any]]:
    """Where each table lives: ``{table: {"sharding_type", "ranks", "rows", "dim"}}`` ({} when not sharded)."""
    if not is_sharded(model):
        return {}
    dmp = _layer(model).__dict__["dmp"]
    out: dict[str, dict[str, Any]] = {}
    rows = _layer(model).table_rows()
    for module_plan in dmp.plan.plan.values():
        for table, ps in module_plan.items():
            out[table] = {"sharding_type": ps.sharding_type, "ranks": list(ps.ranks or []),
                          "rows": rows.get(table), "dim": _layer(model).table_dims.get(table)}
    return out


def local_table_rows(model: Any) -> int:
    """Table rows this process holds, summed over the tables (a column-wise shard counts its share of a row)."""
    n = 0
    for k, v in model.state_dict().items():
        if k.startswith(_TABLE_PREFIX) and hasattr(v, "local_shards"):
            n += sum(s.tensor.numel() for s in v.local_shards()) // int(v.size(1))
    return n


def gather_state_dict(model: Any) -> dict[str, torch.Tensor] | None:
    """The sharded model's weights in the layout of the same model with ``embedding_backend="native"``, every
    table gathered whole. A collective: every process must call it. Returned on rank 0, None on the others."""
    import torch.distributed as dist

    from ..distributed import quiet_torchrec
    emb = _layer(model)
    main = not dist.is_initialized() or dist.get_rank() == 0
    out: dict[str, torch.Tensor] = {}
    full: dict[str, torch.Tensor] = {}
    with quiet_torchrec():
        for k, v in model.state_dict().items():
            if not k.startswith(_TABLE_PREFIX):
                if main:
                    out[k] = v.detach().cpu().clone()
                continue
            t = torch.empty(tuple(v.size()), dtype=v.dtype) if main else None
            v.gather(dst=0, out=t)                            # a ShardedTensor: the shards of every process
            if t is not None:
                full[k[len(_TABLE_PREFIX):].split(".")[1]] = t   # embedding_bags.<table>.weight
    if not main:
        return None
    rows = emb.table_rows()   # the native layer: one matrix per dimension, each table at its row offset
    for gi, d in enumerate(emb.group_dims):
        names = [n for n in emb.table_offsets if emb.table_dims[n] == d]
        w = torch.zeros(sum(rows[n] for n in names), d)
        for n in names:
            w[emb.table_offsets[n]:emb.table_offsets[n] + rows[n]] = full[n]
        out[f"embedding.weights.{gi}"] = w
    return out


def tables_state(model: Any) -> dict[str, Any]:
    """This process's shards of the tables and of their fused optimizer's state: what
    :class:`~ctrkit.callbacks.BackupAndRestore` writes with ``torch.distributed.checkpoint`` (the rest of a
    checkpoint is an ordinary file)."""
    dmp = _layer(model).__dict__["dmp"]
    return {"model": {k: v for k, v in model.state_dict().items() if hasattr(v, "local_shards")},
            "tables_optimizer": dmp.fused_optimizer.state_dict()}


def load_tables(model: Any, path: str) -> None:
    """Read the tables and their optimizer state written from :func:`tables_state` at ``path`` (a directory of
    ``torch.distributed.checkpoint``; each process reads the rows of its own shards). A collective."""
    import torch.distributed.checkpoint as dcp

    from ..distributed import quiet_torchrec
    state = tables_state(model)
    with quiet_torchrec():
        dcp.load(state, checkpoint_id=str(path))
        model.load_state_dict(state["model"], strict=False)
        _layer(model).__dict__["dmp"].fused_optimizer.load_state_dict(state["tables_optimizer"])
