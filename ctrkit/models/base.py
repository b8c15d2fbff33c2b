"""BaseModel: the model contract every ctrkit model follows, with the Keras-style facade mixed in.

A model is a small ``nn.Module`` that declares its feature columns and tasks (names, types), owns one
:class:`~ctrkit.layers.EmbeddingLayer`, and whose ``forward(batch)`` returns ``{task: logits}``. Optional hooks:
``compute_loss`` (a special objective, e.g. ESMM) and ``train_step`` (what one training step scores, e.g. the
positions of a sequence). The sigmoid / softmax lives in :meth:`BaseModel.logits_to_predictions`, not in the
model. ``compile / fit / evaluate / predict / save`` come from :class:`~ctrkit.models.facade.KerasFacade` and hand
everything to the model's :class:`~ctrkit.training.Trainer`.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..exceptions import SchemaError
from ..features import DenseFeat, check_feature_columns, config_from_json, config_to_json, split_feature_columns
from ..layers.core import Towers
from ..layers.cross import GatedCrossNet
from ..layers.embedding import EmbeddingLayer
from ..layers.projection import InputProjection, ModelInput
from ..layers.torchrec_embedding import EMBEDDING_BACKENDS
from ..training.losses import TaskLoss
from ..training.tasks import TASK_TYPES, check_tasks, label_prior, resolve_device
from .facade import KerasFacade
from .outputs import TaskOutputs

__all__ = ["BaseModel", "resolve_device", "label_prior", "TASK_TYPES"]


class BaseModel(KerasFacade, TaskOutputs, nn.Module):
    """Common base of every ctrkit model.

    Args:
        feature_columns: the features the model reads (an encoder's ``feature_columns`` carry the encoder).
        task_names: one name per task (output order of ``predict``).
        task_types: ``"binary"``, ``"regression"`` or ``"multiclass"`` per task.
        l2_reg_embedding: L2 on the embedding vectors looked up in each batch (mean over the batch of their
            squared norms), so the cost does not grow with the table size.
        l2_reg_dnn: L2 on the weight matrices of the dense layers (sum of squares).
        init_std: standard deviation of the embedding initialisation.
        seed: seeds the weight initialisation (without touching the global RNG) and, by default, ``fit``.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``.
        sparse: sparse embedding gradients (for very large tables).
        embedding_backend: ``"native"`` (default) or ``"torchrec"``: the id tables are held by TorchRec and
            ``compile`` shards them over the processes of a ``torchrun`` (one process: all tables on it); see
            :mod:`ctrkit.training.sharding` and ``docs/sharding.md``. Needs the optional TorchRec install.
        encoder: a fitted :class:`~ctrkit.FeatureEncoder`; taken from ``feature_columns`` when they carry one.
        num_classes: the number of classes of each ``"multiclass"`` task: one int for all of them, a list in
            task order, or ``{task: C}`` (C >= 2). A multiclass task's logits are ``(B, C)``; its labels are
            class ids ``0..C-1``. Only models whose ``supports_multiclass`` is True accept such tasks.
    """

    multitask = False
    supports_torchrec = True      # False for models that read their tables directly (EmbeddingLayer.weights)
    supports_multiclass = False   # True for models whose task heads are ``Towers`` built with ``task_widths``
    #: what the conformance checks (``ctrkit.testing``) must know about the model's inputs and tasks, e.g.
    #: ``{"needs_sparse": True}``; the tags and their defaults: ``ctrkit.testing.DEFAULT_TAGS``
    conformance_tags: dict = {}

    def __init__(self, feature_columns: Sequence, task_names: Sequence[str], task_types: Sequence[str], *,
                 l2_reg_embedding: float = 0.0, l2_reg_dnn: float = 0.0, init_std: float = 0.01,
                 seed: int | None = 1024, device: Any = "cpu", sparse: bool = False,
                 embedding_backend: str = "native", encoder: Any = None,
                 config: dict[str, Any] | None = None, num_classes: Any = None) -> None:
        nn.Module.__init__(self)
        name = type(self).__name__
        if embedding_backend not in EMBEDDING_BACKENDS:
            raise ValueError(f"{name}: embedding_backend must be one of {list(EMBEDDING_BACKENDS)}, got "
                             f"{embedding_backend!r}.")
        if embedding_backend == "torchrec" and not self.supports_torchrec:
            raise ValueError(f"{name}: embedding_backend='torchrec' is not supported: {name} reads its embedding "
                             "tables directly (attention over the behaviour sequence looks rows up itself), which "
                             "TorchRec's sharded tables do not allow. Use embedding_backend='native'.")
        #: who holds the id tables: ``"native"`` (:class:`~ctrkit.layers.EmbeddingLayer`) or ``"torchrec"``
        #: (:class:`~ctrkit.layers.torchrec_embedding.TorchRecEmbeddingLayer`, sharded by ``compile``)
        self.embedding_backend = embedding_backend
        self.encoder = encoder if encoder is not None else getattr(feature_columns, "encoder", None)
        self.feature_columns = check_feature_columns(feature_columns, where=f"{name}: feature_columns")
        if not self.feature_columns:
            raise SchemaError(f"{name}: feature_columns is empty. Pass at least one SparseFeat, DenseFeat or "
                              "VarLenSparseFeat.")
        for arg, v in (("l2_reg_embedding", l2_reg_embedding), ("l2_reg_dnn", l2_reg_dnn), ("init_std", init_std)):
            if not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{name}: {arg} must be a number >= 0, got {v!r}.")
        self.task_names, self.task_types, self.num_classes = check_tasks(
            name, task_names, task_types, num_classes, self.multitask, self.supports_multiclass)
        #: output columns per task in ``predict`` / ``predict_logits``: 1, or C for a multiclass task
        self.task_widths = [self.num_classes.get(t, 1) for t in self.task_names]
        self.output_width = sum(self.task_widths)
        self.l2_reg_embedding, self.l2_reg_dnn = float(l2_reg_embedding), float(l2_reg_dnn)
        self.seed = seed
        self.device = resolve_device(device)
        self.dense_dim = sum(f.dimension for f in split_feature_columns(self.feature_columns).dense
                             if isinstance(f, DenseFeat))
        with torch.random.fork_rng(devices=[]):  # seeded here once; _finish_init skips the (large) tables
            if seed is not None:
                torch.manual_seed(int(seed))
            self.embedding = self.make_embedding(self.feature_columns, init_std=init_std, sparse=sparse)
        self.input_projection = InputProjection(self.embedding, self.dense_dim)
        self.input_dim = self.input_projection.output_dim
        #: GDCN's gated cross network on the model input, for the models whose ``cross_layers`` is set (None: off)
        self.input_cross: GatedCrossNet | None = None
        self._config = {k: v for k, v in (config or {}).items() if k not in ("self", "__class__", "gpus")}
        self._binary_mask = torch.tensor([t == "binary" for t in self.task_types])
        #: True until the weights are trained or loaded: the first ``fit`` may then set the output biases
        self._fresh_weights = True
        self.trainer = None

    # ------------------------------------------------------------------ construction helpers
    def make_embedding(self, feature_columns: Sequence, *, init_std: float, sparse: bool) -> EmbeddingLayer:
        """The embedding layer of the model's ``embedding_backend`` for ``feature_columns``."""
        if self.embedding_backend == "torchrec":
            from ..layers.torchrec_embedding import TorchRecEmbeddingLayer
            return TorchRecEmbeddingLayer(feature_columns, init_std=init_std, sparse=sparse)
        return EmbeddingLayer(feature_columns, init_std=init_std, sparse=sparse)

    def _add_input_cross(self, cross_layers: int, cross_rank: int | None) -> None:
        """Put GDCN's gated cross network (:class:`~ctrkit.layers.cross.GatedCrossNet`, ``cross_layers`` layers of
        rank ``cross_rank``, None for full rank) between the input and the model's first layer; 0 layers: none.
        The models that offer ``cross_layers`` call this before :meth:`_finish_init`; :meth:`inputs` and
        :meth:`_input` then return the crossed input."""
        name = type(self).__name__
        if isinstance(cross_layers, bool) or not isinstance(cross_layers, int) or cross_layers < 0:
            raise ValueError(f"{name}: cross_layers must be an int >= 0, got {cross_layers!r}.")
        if cross_rank is not None and (isinstance(cross_rank, bool) or not isinstance(cross_rank, int)
                                       or cross_rank < 1):
            raise ValueError(f"{name}: cross_rank must be None (full rank) or an int >= 1, got {cross_rank!r}.")
        if cross_layers:
            self.input_cross = GatedCrossNet(self.input_dim, cross_layers, low_rank=cross_rank)

    def _finish_init(self) -> None:
        """Re-initialise all weights from ``seed`` (global RNG untouched) and move to the device."""
        with torch.random.fork_rng(devices=[]):
            if self.seed is not None:
                torch.manual_seed(int(self.seed))
            for m in self.modules():
                if m is not self and m is not self.embedding and hasattr(m, "reset_parameters"):
                    m.reset_parameters()  # type: ignore[operator]  # hasattr-checked; stubs say Tensor | Module
        self._dnn_weights = [p for n, p in self.named_parameters()
                             if not n.startswith("embedding.") and p.dim() >= 2]
        self.embedding.keep_last = self.l2_reg_embedding > 0
        self.to(self.device)

    @property
    def collective_forward(self) -> bool:
        """True when a forward pass is a collective over the processes (tables sharded over several): every
        process must then run as many forward passes as the others (``predict_logits`` evens them out)."""
        return bool(getattr(self.embedding, "equal_batches", False))

    def inputs(self, batch: Any) -> ModelInput | torch.Tensor:
        """The batch as model input for a layer that starts with a linear map of it (an
        :class:`~ctrkit.layers.MLP`, :class:`~ctrkit.layers.MixtureOfExperts`); that first layer is computed by
        the :class:`~ctrkit.layers.InputProjection` (with an input cross network: the crossed tensor)."""
        if self.input_cross is not None:
            return self.input_cross(self.input_projection(batch))
        return self.input_projection.wrap(batch)

    def _input(self, batch: Any) -> torch.Tensor:
        """The concatenation of all embeddings and dense values, ``(B, input_dim)``, through the input cross
        network when the model has one."""
        x = self.input_projection(batch)
        return x if self.input_cross is None else self.input_cross(x)

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-ready (feature columns as dicts)."""
        return {k: config_to_json(v) for k, v in self._config.items()}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> BaseModel:
        return cls(**config_from_json(dict(config)))

    def count_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """As :meth:`torch.nn.Module.load_state_dict`; loaded weights are not re-initialised by ``fit``."""
        self._fresh_weights = False
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ------------------------------------------------------------------ output bias from the label prior
    def output_biases(self) -> dict[str, torch.Tensor]:
        """Each task's output bias, as views of parameters (``{task: (width,)}``), for
        :meth:`init_output_bias`. Tower models return their towers' last biases, single-task linear+deep
        models the linear part's bias; ``{}`` when a model has none to offer."""
        towers = getattr(self, "towers", None)
        if isinstance(towers, Towers):
            b = towers.output_biases()
            return {t: b[t] for t in self.task_names if t in b}
        bias = getattr(getattr(self, "linear", None), "bias", None)
        if len(self.task_names) == 1 and isinstance(bias, nn.Parameter):
            return {self.task_names[0]: bias}
        return {}

    @torch.no_grad()
    def init_output_bias(self, y: torch.Tensor, sample_weight: torch.Tensor | None = None
                         ) -> dict[str, list[float]]:
        """Set each task's output bias to its label prior, so that training starts from the base rate.

        Binary tasks get the log-odds of the (weighted) positive rate, regression tasks the mean label,
        multiclass tasks the centred log class frequencies; NaN (missing) labels are left out. This is what
        LightGBM's ``boost_from_average`` and XGBoost's estimated ``base_score`` do: with a 5% click rate a bias
        near zero starts every prediction near 0.5, and the first epoch is spent moving it to 0.05.
        ``fit`` calls it once, on a new model (see ``compile(init_output_bias=...)``).

        Args:
            y: labels ``(N, T)`` in task order.
            sample_weight: ``(N,)`` or None.

        Returns:
            ``{task: values written}`` (tasks without an output bias or without labels are left out).
        """
        slots = self.output_biases()
        done: dict[str, list[float]] = {}
        for i, (t, typ) in enumerate(zip(self.task_names, self.task_types)):
            if t not in slots:
                continue
            v = label_prior(y[:, i], typ, self.num_classes.get(t, 1), sample_weight)
            if v is not None:
                slots[t].copy_(v.to(slots[t]).reshape(slots[t].shape))
                done[t] = [float(a) for a in v]
        return done

    # ------------------------------------------------------------------ training hooks
    def compute_loss(self, outputs: Mapping[str, torch.Tensor], y: torch.Tensor,
                     sample_weight: torch.Tensor | None = None, loss: TaskLoss | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss hook: weighted sum of per-task losses. Override for a special objective.

        Args:
            outputs: ``{task: logits (B,)}`` from ``forward``.
            y: labels ``(B, T)`` in task order; NaN marks a missing label (masked out of its task).
            sample_weight: ``(B,)`` or None.
            loss: the compiled per-task loss (:class:`~ctrkit.training.losses.TaskLoss`; default: this model's).

        Returns:
            ``(total, per_task)`` where ``per_task`` is a ``(T,)`` tensor.
        """
        if loss is None:
            loss = self._require_trainer("compute_loss").loss
        return loss(outputs, y, sample_weight)

    def train_step(self, forward: Any, x: Any, y: torch.Tensor, sample_weight: torch.Tensor | None,
                   loss: TaskLoss) -> tuple[torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor] | None]:
        """What one training step scores: ``(total, per_task, outputs)``. ``forward`` is the model itself, or
        its ``DistributedDataParallel`` wrapper; ``outputs`` (or None) feed the epoch's training metrics."""
        outputs = forward(x)
        total, per_task = self.compute_loss(outputs, y, sample_weight, loss)
        return total, per_task, outputs

    def regularization_loss(self) -> torch.Tensor | float | None:
        """The L2 terms to add to the loss, or None; a float only when there is nothing to sum."""
        reg: torch.Tensor | float | None = None
        if self.l2_reg_dnn > 0:
            reg = self.l2_reg_dnn * sum((p * p).sum() for p in self._dnn_weights)
        last = getattr(self.embedding, "last", None)
        if self.l2_reg_embedding > 0 and last:
            r = self.l2_reg_embedding * sum((g * g).sum() for g in last) / last[0].shape[0]
            reg = r if reg is None else reg + r
        return reg
