"""The sparse autoencoder every architecture builds on.

A :class:`SparseAutoencoder` holds one *or several* SAEs of the same architecture and
width ("members"), stacked along a leading dimension, so a sweep over ``k`` or penalty
coefficients trains as one set of batched matrix products (see :mod:`untwine.sae.train`).
A single SAE is simply ``members == 1``.

Parameters (SAELens's names and layouts, with the member dimension in front)::

    W_enc [M, d_in, d_sae]   b_enc [M, d_sae]   W_dec [M, d_sae, d_in]   b_dec [M, d_in]

Encoding is ``f = act((x * s - b_dec) @ W_enc + b_enc)`` and decoding
``x_hat = (f @ W_dec + b_dec) / s`` where ``s`` (``input_scale``) normalises the inputs to a
mean norm of ``sqrt(d_in)`` during training (Anthropic's April 2024 update; SAELens's
``expected_average_only_in``).  :meth:`SparseAutoencoder.export` folds ``s`` and the
decoder-row norms into the weights, so a saved SAE works on raw inputs with ``s = 1`` and
unit-norm decoder rows, the learnt dictionary in the input's units (TopK and matching
pursuit keep their rows as they are, unit norm when untwine trained them: their choice of
latents is not invariant to rescaling them).

Training tricks shared by the architectures (each switchable by a class attribute):

* ``unit_norm_decoder``: decoder rows are kept at unit norm; before each optimiser step the
  gradient component parallel to each row is removed, after it the rows are renormalised
  (sparsify, dictionary_learning, Bussmann et al.).
* ``uses_auxk``: the AuxK loss (Gao et al. 2024): the ``k_aux = d_in / 2`` largest
  pre-activations among *dead* latents reconstruct the residual error ``x - x_hat``; the
  loss is the squared error normalised by the residual's total variance, scaled by
  ``min(1, dead / k_aux)`` and weighted by ``aux_coefficient`` (1/32), added to the
  unnormalised reconstruction loss: dictionary_learning's TopK trainer.  (Gao et al.
  normalise the main loss too, which weighs AuxK about ``d_in`` times more here; SAELens
  adds it unnormalised with weight 1.)
* dead-latent tracking: ``rows_since_fired`` counts the rows seen since each latent last
  fired; a latent is dead after ``dead_rows`` rows without firing.

The loss (:meth:`SparseAutoencoder.loss_terms`) changes no state: the training loop takes
the gradients (:meth:`SparseAutoencoder.gradients`), then calls
:meth:`SparseAutoencoder.update_state` with the batch's codes (dead-latent counts and the
architecture's own :meth:`SparseAutoencoder.after_batch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from untwine.errors import UntwineError
from untwine.sae.hparams import Field, fields_of, resolve

#: every architecture's: subtract ``b_dec`` from the input before encoding (SAELens's ``apply_b_dec_to_input``)
CENTER_INPUT = Field("center_input", bool, False, True, "subtract b_dec from the input before encoding")


@dataclass
class Encoded:
    """Codes of a batch for every member.

    ``indices is None``: ``values`` is dense ``[M, B, d_sae]``.  Otherwise the codes are
    sparse: ``values``/``indices`` are ``[M, B, K]`` (zeros in ``values`` mark unused slots;
    an index may repeat, its values add up).  ``pre`` holds the pre-activations
    ``[M, B, d_sae]`` where the architecture has them (AuxK uses them).
    """

    values: Tensor
    indices: Tensor | None = None
    pre: Tensor | None = None
    #: the centred input ``[M, B, d_in]`` the codes came from (reused by AuxK)
    xc: Tensor | None = None
    _fired: Tensor | None = field(default=None, repr=False, compare=False)

    def dense(self, d_sae: int) -> Tensor:
        if self.indices is None:
            return self.values
        out = self.values.new_zeros(*self.values.shape[:2], d_sae)
        return out.scatter_add(-1, self.indices, self.values)

    def fired(self, d_sae: int) -> Tensor:
        """``[M, d_sae]`` bool: which latents were non-zero on some row of the batch (computed
        once: the loss and the state update both ask)."""
        if self._fired is None:
            if self.indices is None:
                self._fired = (self.values != 0).any(dim=1)
            else:
                M = self.values.shape[0]
                out = torch.zeros(M * d_sae, dtype=torch.bool, device=self.values.device)
                offs = (torch.arange(M, device=self.indices.device) * d_sae).view(M, 1, 1)
                out[(self.indices + offs)[self.values != 0]] = True
                self._fired = out.view(M, d_sae)
        return self._fired


class SparseAutoencoder(nn.Module):
    """Base class: parameters, decoding, constraints, AuxK, dead latents, export.

    An architecture is one subclass registered with :func:`untwine.sae.register`: it sets
    :attr:`name`, declares its hyper-parameters as a dataclass :attr:`Params`
    (:mod:`untwine.sae.hparams`), implements :meth:`encode_batch` and may add a
    :meth:`penalty`, state updates (:meth:`after_batch`) and SAELens hooks
    (:meth:`extra_tensors`, :meth:`load_extra`, :meth:`saelens_config`,
    :meth:`saelens_hparams`, :meth:`saelens_tensors`).
    """

    #: registry name (``--arch``)
    name: ClassVar[str] = ""
    #: the hyper-parameters: a keyword-only dataclass of :func:`~untwine.sae.hparams.hparam` fields
    Params: ClassVar[type | None] = None
    #: derived from :attr:`Params` when the class is defined: the fields, every
    #: hyper-parameter with its default (None: required), those that may differ between the
    #: members of one module, and those that must be given
    hparam_fields: ClassVar[tuple[Field, ...]] = ()
    hparam_defaults: ClassVar[dict[str, Any]] = {}
    member_hparams: ClassVar[tuple[str, ...]] = ()
    required_hparams: ClassVar[tuple[str, ...]] = ()
    #: Adam learning rate when none is given (inputs normalised to norm sqrt(d_in))
    default_lr: ClassVar[float] = 3e-3
    #: ``architecture`` written to SAELens's ``cfg.json`` (not inherited: registering a class
    #: that does not set it sets it to :attr:`name`, a file only untwine reads)
    saelens_architecture: ClassVar[str] = ""
    #: SAELens architectures loaded as this class when a ``cfg.json`` has no ``untwine``
    #: block (untwine's own folders name their class there); not inherited
    saelens_reads: ClassVar[tuple[str, ...]] = ()
    #: the ``cfg.json`` keys of each SAELens architecture it reads or writes: key -> (SAELens's
    #: default, check) (:mod:`untwine.sae.saelens_keys`); and the training-only keys
    #: SAELens's checkpoints carry (no effect on the codes)
    saelens_keys: ClassVar[dict[str, dict[str, tuple[Any, Any]]]] = {}
    saelens_training_keys: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: tensors saved beside the weights: name -> shape in ``d_in`` / ``d_sae`` (e.g. ``("d_sae",)``)
    extra_tensor_shapes: ClassVar[dict[str, tuple[str, ...]]] = {}
    unit_norm_decoder: ClassVar[bool] = True
    uses_auxk: ClassVar[bool] = False
    has_encoder: ClassVar[bool] = True
    #: export folds the decoder-row norms into the codes (exact for positively homogeneous
    #: activations; matching pursuit's choice of atoms is not, it keeps its rows as they are)
    fold_decoder_norms: ClassVar[bool] = True
    #: initial decoder-row norm (rows are unit norm when ``unit_norm_decoder``)
    decoder_init_norm: ClassVar[float] = 1.0

    #: ``b_enc`` learns at ``sqrt(d_in)`` times the learning rate: Adam moves every parameter
    #: by about the learning rate per step, so with inputs of norm ``sqrt(d_in)`` (unit-size
    #: coordinates) a step of the encoder's ``d_in`` weights moves a pre-activation about
    #: ``sqrt(d_in)`` times as far as a step of its bias; a latent whose threshold is its bias
    #: (ReLU, JumpReLU) would otherwise learn it ``sqrt(d_in)`` times too slowly
    encoder_bias_lr_scaled: ClassVar[bool] = False

    #: AuxK weight (Gao et al.'s 1/32)
    aux_coefficient: ClassVar[float] = 1.0 / 32.0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "Params" in cls.__dict__:
            fields = fields_of(cls.Params, cls.__qualname__) if cls.Params is not None else ()
            cls.hparam_fields = fields
            cls.hparam_defaults = {f.name: None if f.required else f.default for f in fields}
            cls.member_hparams = tuple(f.name for f in fields if f.member)
            cls.required_hparams = tuple(f.name for f in fields if f.required)

    def __init__(self, d_in: int, d_sae: int, members: list[dict[str, Any]] | None = None, *, generator=None):
        super().__init__()
        members = members if members is not None else [{}]
        if not members:
            raise UntwineError("an SAE module needs at least one member")
        self.d_in, self.d_sae, self.members = int(d_in), int(d_sae), len(members)
        self.hparams = [self.resolve_hparams(m, d_in=d_in, d_sae=d_sae) for m in members]
        for key in (*self.hparam_defaults, "center_input"):
            if key not in self.member_hparams:
                vals = {repr(h[key]) for h in self.hparams}
                if len(vals) > 1:
                    raise UntwineError(f"{self.name}: {key} must be the same for every member of one module")
        M = self.members
        w = torch.randn(M, d_sae, d_in, generator=generator)
        w = w / w.norm(dim=-1, keepdim=True) * self.decoder_init_norm
        self.W_dec = nn.Parameter(w)
        self.b_dec = nn.Parameter(torch.zeros(M, d_in))
        if self.has_encoder:
            self.W_enc = nn.Parameter(w.transpose(1, 2).clone())
            self.b_enc = nn.Parameter(torch.zeros(M, d_sae))
        self.register_buffer("input_scale", torch.ones(()))
        self.register_buffer("rows_since_fired", torch.zeros(M, d_sae, dtype=torch.int64))
        self.center_input = self.hparams[0]["center_input"]

    # -- hyper-parameters ----------------------------------------------------------
    @classmethod
    def resolve_hparams(cls, given: dict[str, Any], *, d_in: int, d_sae: int) -> dict[str, Any]:
        """``given`` completed with the defaults of :attr:`Params` and coerced to their types,
        plus ``center_input`` (every architecture's; default true); unknown, missing or
        mistyped values are one error line."""
        given = dict(given)
        center = given.pop("center_input", None)
        center = CENTER_INPUT.coerce(cls.name, True if center is None else center)
        out = resolve(cls.name, cls.hparam_fields, given)
        cls.check_hparams(out, d_in=d_in, d_sae=d_sae)
        out["center_input"] = center
        return out

    @classmethod
    def check_hparams(cls, hp: dict[str, Any], *, d_in: int, d_sae: int) -> None:
        """Raise :class:`UntwineError` for impossible values (subclasses extend)."""
        k = hp.get("k")
        if k is not None:
            if int(k) != k or k < 1:
                raise UntwineError(f"k must be a positive integer, got {k}")
            if k > d_sae:
                raise UntwineError(f"k = {k} is larger than the number of latents ({d_sae})")

    def member_tensor(self, key: str, dtype=torch.float32) -> Tensor:
        """The per-member hyper-parameter ``key`` as a ``[M]`` tensor on the module's device."""
        return torch.tensor([h[key] for h in self.hparams], dtype=dtype, device=self.W_dec.device)

    def member_ints(self, key: str) -> list[int]:
        return [int(h[key]) for h in self.hparams]

    # -- forward pieces ------------------------------------------------------------
    def centered(self, xn: Tensor) -> Tensor:
        """``[M, B, d_in]``: the (normalised) input minus each member's ``b_dec``."""
        if self.center_input:
            return xn.unsqueeze(0) - self.b_dec.unsqueeze(1)
        return xn.unsqueeze(0).expand(self.members, -1, -1)

    def pre_acts(self, xn: Tensor, xc: Tensor | None = None) -> Tensor:
        """``[M, B, d_sae]`` encoder pre-activations of normalised inputs ``xn [B, d_in]``
        (``xc``: their centred form, when already computed)."""
        return torch.baddbmm(self.b_enc.unsqueeze(1), self.centered(xn) if xc is None else xc, self.W_enc)

    def gather_pre(self, xc: Tensor, indices: Tensor) -> Tensor:
        """Pre-activations at ``indices [M, B, K]`` only, differentiable: ``xc . W_enc[:, j] + b_enc[j]``.

        Selecting latents on a no-grad dense ``pre`` and recomputing the selected entries
        this way makes the encoder's backward pass cost ``B * K * d_in`` instead of a dense
        ``B * d_sae * d_in`` product (gradients are identical: unselected entries get none).
        """
        M, h, d = self.members, self.d_sae, self.d_in
        offs = (torch.arange(M, device=indices.device) * h).view(M, 1, 1)
        flat = indices + offs
        cols = F.embedding(flat, self.W_enc.transpose(1, 2).reshape(M * h, d))  # [M, B, K, d]
        bias = F.embedding(flat, self.b_enc.reshape(M * h, 1)).squeeze(-1)
        return (cols * xc.unsqueeze(2)).sum(-1) + bias

    def encode_batch(self, xn: Tensor, *, train: bool) -> Encoded:  # pragma: no cover - abstract
        raise NotImplementedError

    def decode_encoded(self, enc: Encoded) -> Tensor:
        """``[M, B, d_in]`` reconstruction (normalised units) from :class:`Encoded` codes."""
        if enc.indices is None:
            return torch.baddbmm(self.b_dec.unsqueeze(1), enc.values, self.W_dec)
        return self.sparse_decode(enc.values, enc.indices) + self.b_dec.unsqueeze(1)

    def sparse_decode(self, values: Tensor, indices: Tensor) -> Tensor:
        """``sum_j values_j W_dec[indices_j]`` per row without materialising dense codes."""
        M, B, K = values.shape
        offs = (torch.arange(M, device=indices.device) * self.d_sae).view(M, 1, 1)
        out = F.embedding_bag(
            (indices + offs).reshape(M * B, K),
            self.W_dec.reshape(M * self.d_sae, self.d_in),
            per_sample_weights=values.reshape(M * B, K),
            mode="sum",
        )
        return out.view(M, B, self.d_in)

    def penalty(self, enc: Encoded, xn: Tensor, progress: float) -> Tensor | None:
        """``[M]`` sparsity penalty added to the loss (None: none)."""
        return None

    @torch.no_grad()
    def after_batch(self, enc: Encoded) -> None:
        """The architecture's state updates after a training batch's codes ``enc`` (BatchTopK's
        threshold); called by :meth:`update_state`, never by the loss."""

    # -- training: a pure loss, its gradients, then the state updates --------------------
    def loss_terms(self, xn: Tensor, *, progress: float, dead_rows: int) -> tuple[Tensor, dict[str, Tensor], Encoded]:
        """Sum over members of reconstruction + penalty + AuxK on normalised inputs ``xn``,
        the terms (each ``[M]``, detached) and the batch's codes.  Changes no state.

        The reconstruction term is the squared error summed over dimensions and averaged
        over rows.  AuxK uses the latents that are dead once this batch is counted
        (:meth:`dead_after`).
        """
        enc = self.encode_batch(xn, train=True)
        x_hat = self.decode_encoded(enc)
        err = xn.unsqueeze(0) - x_hat
        recon = err.pow(2).sum(-1).mean(-1)
        total = recon
        terms = {"mse": recon.detach()}
        pen = self.penalty(enc, xn, progress)
        if pen is not None:
            total = total + pen
            terms["penalty"] = pen.detach()
        dead = self.dead_after(enc.fired(self.d_sae), xn.shape[0], dead_rows)
        if self.uses_auxk and bool(dead.any()):
            aux = self.auxk_loss(self.centered(xn) if enc.xc is None else enc.xc, err.detach(), dead)
            total = total + self.aux_coefficient * aux
            terms["auxk"] = aux.detach()
        terms["l0"] = (enc.values != 0).sum(-1).float().mean(-1).detach()
        return total.sum(), terms, enc

    def training_loss(self, xn: Tensor, *, progress: float, dead_rows: int) -> tuple[Tensor, dict[str, Tensor]]:
        """``(loss, terms)`` of :meth:`loss_terms` (pure: no state changes)."""
        loss, terms, _ = self.loss_terms(xn, progress=progress, dead_rows=dead_rows)
        return loss, terms

    @torch.no_grad()
    def dead_after(self, fired: Tensor, rows: int, dead_rows: int) -> Tensor:
        """``[M, d_sae]`` bool: dead (``dead_rows`` rows or more without firing) once a batch of
        ``rows`` rows that fired ``fired [M, d_sae]`` is counted; changes nothing."""
        since = torch.where(fired, torch.zeros_like(self.rows_since_fired), self.rows_since_fired + rows)
        return since >= dead_rows

    @torch.no_grad()
    def update_state(self, enc: Encoded, rows: int) -> None:
        """After a training batch of ``rows`` rows with codes ``enc``: count the rows since each
        latent fired (the batch's firing latents reset) and run :meth:`after_batch`."""
        self.rows_since_fired.add_(rows).masked_fill_(enc.fired(self.d_sae), 0)
        self.after_batch(enc)

    def gradients(self, xn: Tensor, *, progress: float, dead_rows: int) -> tuple[dict[str, Tensor], Encoded]:
        """Set every parameter's ``.grad`` to the gradient of :meth:`loss_terms` on ``xn``;
        returns its terms and the codes (for :meth:`update_state`).  Autograd here;
        :class:`~untwine.sae.selecting.SelectingSAE` writes the gradient out by hand where
        that is exact."""
        loss, terms, enc = self.loss_terms(xn, progress=progress, dead_rows=dead_rows)
        for p in self.parameters():
            p.grad = None
        loss.backward()
        return terms, enc

    def compute_gradients(self, xn: Tensor, *, progress: float, dead_rows: int) -> dict[str, Tensor]:
        """The terms of :meth:`gradients` (which sets the ``.grad``s); changes no state."""
        return self.gradients(xn, progress=progress, dead_rows=dead_rows)[0]

    def auxk_loss(self, xc: Tensor, residual: Tensor, dead: Tensor) -> Tensor:
        """``[M]`` AuxK loss: dead latents' top ``k_aux`` activations reconstruct ``residual``.

        Computed densely over the dead latents' columns only (a few percent of the width
        once training settles), which beats gathering ``k_aux`` rows per input.
        """
        k_aux, n_dead, cols = self.auxk_columns(dead)
        pre = torch.baddbmm(self.b_enc[:, cols].unsqueeze(1), xc, self.W_enc[:, :, cols])
        keep = self.auxk_keep(pre.detach(), dead[:, cols], k_aux)
        e_hat = torch.bmm(pre.relu() * keep, self.W_dec[:, cols])
        weight = self.auxk_weight(residual, n_dead, k_aux)
        return weight * (e_hat - residual).pow(2).sum((1, 2))

    @staticmethod
    def auxk_weight(residual: Tensor, n_dead: Tensor, k_aux: int) -> Tensor:
        """``[M]`` factor of AuxK's squared error: ``min(1, dead / k_aux)`` over the residual's
        total variance (no gradient flows through it: the residual is detached)."""
        var = (residual - residual.mean(1, keepdim=True)).pow(2).sum((1, 2)).clamp_min(1e-12)
        return (n_dead.to(residual.dtype) / k_aux).clamp(max=1.0) / var

    def auxk_columns(self, dead: Tensor) -> tuple[int, Tensor, Tensor]:
        """``(k_aux, dead count per member [M], columns dead for some member [n])``."""
        return max(1, self.d_in // 2), dead.sum(-1), dead.any(0).nonzero().squeeze(1)

    @staticmethod
    @torch.no_grad()
    def auxk_keep(pre: Tensor, dead: Tensor, k_aux: int) -> Tensor:
        """``[M, B, n]`` 0/1: per row, the ``k_aux`` largest pre-activations ``pre [M, B, n]``
        among the latents dead for that member (``dead [M, n]``), as far as they are positive
        (the others add nothing after the ReLU, so they may be marked or not)."""
        own = dead.unsqueeze(1).expand_as(pre)
        if pre.shape[-1] <= k_aux:  # every dead latent is among the top k_aux
            return own.to(pre.dtype)
        # rows with at most k_aux positive dead pre-activations keep them all: only the
        # others need a top-k (few rows, as dead latents lose the main top-k)
        pos = own & (pre > 0)
        rows = (pos.sum(-1) > k_aux).nonzero(as_tuple=True)
        keep = pos.to(pre.dtype)
        if rows[0].numel():
            sub = pre[rows].masked_fill(~own[rows], float("-inf"))
            top, idx = sub.topk(k_aux, dim=-1, sorted=False)
            keep[rows] = torch.zeros_like(sub).scatter_(-1, idx, (top > 0).to(pre.dtype))
        return keep

    def optim_groups(self) -> list[dict[str, Any]]:
        """Adam parameter groups; ``lr_scale`` multiplies the run's learning rate for a group
        (``b_enc``'s is ``sqrt(d_in)`` where :attr:`encoder_bias_lr_scaled`)."""
        if not (self.encoder_bias_lr_scaled and self.has_encoder):
            return [{"params": list(self.parameters()), "lr_scale": 1.0}]
        rest = [p for n, p in self.named_parameters() if n != "b_enc"]
        return [{"params": rest, "lr_scale": 1.0}, {"params": [self.b_enc], "lr_scale": math.sqrt(self.d_in)}]

    # -- constraints -------------------------------------------------------------------
    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        if not self.unit_norm_decoder or self.W_dec.grad is None:
            return
        w = self.W_dec / self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        g = self.W_dec.grad
        g.sub_((g * w).sum(-1, keepdim=True) * w)

    @torch.no_grad()
    def renorm_decoder(self) -> None:
        if self.unit_norm_decoder:
            self.W_dec.div_(self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-12))

    # -- public encode / decode (input units) ---------------------------------------------
    def _squeeze(self, t: Tensor) -> Tensor:
        return t[0] if self.members == 1 else t

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Dense codes of raw inputs ``x [B, d_in]``: ``[B, d_sae]`` (``[M, B, d_sae]`` for M > 1)."""
        enc = self.encode_batch(x * self.input_scale, train=False)
        return self._squeeze(enc.dense(self.d_sae))

    @torch.no_grad()
    def decode(self, codes: Tensor) -> Tensor:
        """Reconstruction in input units from dense codes ``[B, d_sae]`` (or ``[M, B, d_sae]``)."""
        c = codes if codes.dim() == 3 else codes.unsqueeze(0).expand(self.members, -1, -1)
        return self._squeeze(self.decode_encoded(Encoded(c)) / self.input_scale)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(codes, x_hat)`` of raw inputs, both squeezed like :meth:`encode`."""
        enc = self.encode_batch(x * self.input_scale, train=False)
        x_hat = self.decode_encoded(enc) / self.input_scale
        return self._squeeze(enc.dense(self.d_sae)), self._squeeze(x_hat)

    # -- export to SAELens's layout --------------------------------------------------------
    def extra_tensors(self, m: int, scale: float, row_norm: Tensor) -> dict[str, Tensor]:
        """Architecture-specific tensors of member ``m`` for export (e.g. ``threshold``)."""
        return {}

    def saelens_config(self, m: int, scale: float) -> dict[str, Any]:
        """Architecture-specific ``cfg.json`` keys of member ``m``."""
        return {}

    @classmethod
    def saelens_hparams(cls, sl_arch: str, cfg: dict[str, Any]) -> dict[str, Any]:
        """The hyper-parameters a SAELens ``cfg.json`` of architecture ``sl_arch`` fixes (they
        win over the ``untwine`` block: SAELens encodes with them)."""
        return {}

    @classmethod
    def saelens_tensors(cls, sl_arch: str, cfg: dict[str, Any], tensors: dict[str, Tensor]) -> None:
        """Adapt a SAELens file's tensors in place before loading (their shapes are checked)."""

    @classmethod
    def expected_tensors(cls, d_in: int, d_sae: int) -> dict[str, tuple[int, ...]]:
        """Every tensor of a saved SAE with its shape."""
        out = {"W_dec": (d_sae, d_in), "b_dec": (d_in,)}
        if cls.has_encoder:
            out.update({"W_enc": (d_in, d_sae), "b_enc": (d_sae,)})
        dims = {"d_in": d_in, "d_sae": d_sae}
        return out | {k: tuple(dims[s] for s in shape) for k, shape in cls.extra_tensor_shapes.items()}

    def untwine_hparams(self, m: int, scale: float) -> dict[str, Any]:
        """Member ``m``'s hyper-parameters in input units (stored under ``cfg.json["untwine"]``)."""
        return {k: v for k, v in self.hparams[m].items() if k != "center_input"}

    @torch.no_grad()
    def export(self, m: int = 0) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """Member ``m`` as SAELens tensors with ``input_scale`` and decoder norms folded in.

        Codes are rescaled so decoder rows have unit norm (where :attr:`fold_decoder_norms`)
        and inputs need no normalisation: ``W_dec`` rows -> unit, ``W_enc`` columns times the row norm,
        ``b_enc``/``threshold`` times ``row_norm / s``, ``b_dec / s``.  Exact for the
        positively homogeneous activations used here.
        """
        s = float(self.input_scale)
        W_dec = self.W_dec[m].detach().float().cpu()
        norm = W_dec.norm(dim=-1).clamp_min(1e-12) if self.fold_decoder_norms else torch.ones(self.d_sae)
        out = {"W_dec": (W_dec / norm[:, None]).contiguous(), "b_dec": (self.b_dec[m].detach().float().cpu() / s).contiguous()}
        if self.has_encoder:
            out["W_enc"] = (self.W_enc[m].detach().float().cpu() * norm[None, :]).contiguous()
            out["b_enc"] = (self.b_enc[m].detach().float().cpu() * norm / s).contiguous()
        out.update({k: v.contiguous() for k, v in self.extra_tensors(m, s, norm).items()})
        return out, self.saelens_config(m, s)

    @torch.no_grad()
    def load_exported(self, tensors: dict[str, Tensor]) -> None:
        """Load one exported member (``members == 1``), ``input_scale`` 1."""
        for name in ("W_dec", "b_dec") + (("W_enc", "b_enc") if self.has_encoder else ()):
            getattr(self, name).copy_(tensors[name].to(self.W_dec).unsqueeze(0))
        self.input_scale.fill_(1.0)
        self.load_extra(tensors)

    def load_extra(self, tensors: dict[str, Tensor]) -> None:
        """Load architecture-specific exported tensors (subclasses)."""


def geometric_median(x: Tensor, iters: int = 64, eps: float = 1e-6) -> Tensor:
    """Weiszfeld's algorithm: the point minimising the sum of Euclidean distances to the rows of ``x``."""
    y = x.mean(0)
    for _ in range(iters):
        d = (x - y).norm(dim=-1).clamp_min(eps)
        w = 1.0 / d
        y_new = (w[:, None] * x).sum(0) / w.sum()
        if float((y_new - y).norm()) <= eps * max(1.0, float(y.norm())):
            y = y_new
            break
        y = y_new
    return y
