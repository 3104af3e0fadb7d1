"""The one batched encoder of a trained model: observations or factor rows in, codes out.

Evaluation, the interventional metrics' code cache, traversals, reports and UDR all
encode through :class:`ModelEncoder`.  For each input it gives

* ``codes``: the chosen *representation*: ``"mean"`` (``model.encode``, e.g. the
  posterior mean, or QLAE's quantised code) or ``"sampled"`` (``mean + exp(logvar / 2)
  * eps`` with ``eps`` from the encoder's own generator seeded by ``seed``; a
  deterministic encoder's sample is its mean);
* ``mean`` / ``logvar``: the posterior ``model.encode_dist`` (``logvar`` None for
  deterministic encoders), when asked for (``posterior=True``);
* and, with ``reconstruct=True``, the reconstruction error of decoding ``codes``:
  the mean per-observation loss under the model's own likelihood (its resolved
  ``reconstruction`` hyper-parameter: summed Bernoulli cross-entropy, or summed squared
  error for ``gaussian``; disentanglement_lib's ``reconstruction_loss``; a model without
  that setting is scored with Bernoulli on binary data, squared error otherwise) and the
  per-element mean squared error;
* and, with ``predict=True``, the model's factor predictions ``model.predict(x)``
  (``[N, K]`` class indices; models with factor heads, such as the factor classifier).

Everything runs under ``torch.no_grad()`` in eval mode, in batches of ``batch_size``
on ``device`` (default: the model's), and comes back as float64 numpy arrays.
``precision="bfloat16"`` runs the encoder under ``torch.autocast`` in bfloat16 (about
twice as fast on CPUs with bfloat16 matrix units; opt-in, never the default: codes
differ from float32 in the third significant digit).  An
instance is also a plain callable ``x -> codes`` (what
:class:`untwine.metrics._encode_cache.CodeCache` takes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from untwine.errors import UntwineError
from untwine.metrics.activity import REPRESENTATIONS

#: numeric precisions the encoder can run in (float32 is exact; bfloat16 is opt-in)
PRECISIONS = ("float32", "bfloat16")


@dataclass
class Encoded:
    """What :meth:`ModelEncoder.encode` returns (numpy float64; see the module docstring)."""

    codes: np.ndarray
    mean: np.ndarray | None = None
    logvar: np.ndarray | None = None
    reconstruction: dict[str, float] | None = None
    predictions: np.ndarray | None = None

    def latent_kl(self) -> np.ndarray | None:
        """Average KL of each latent's posterior to the prior ``N(0, 1)``, ``[D]`` (None: deterministic)."""
        if self.mean is None or self.logvar is None:
            return None
        from untwine.metrics.activity import gaussian_kl

        return gaussian_kl(self.mean, self.logvar).mean(axis=0)


def model_device(model) -> torch.device:
    """The device of a model's parameters (CPU for a model without any)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def as_batch(x) -> torch.Tensor:
    """A float32 tensor of observations (numpy arrays and tensors alike)."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    return x.float()


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


class ModelEncoder:
    """Batched encoding of a model's chosen representation (see the module docstring)."""

    def __init__(self, model, representation: str = "mean", *, seed: int = 0, device=None, batch_size: int = 500,
                 precision: str = "float32"):
        if precision not in PRECISIONS:
            raise UntwineError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        if representation not in REPRESENTATIONS:
            raise UntwineError(f"representation must be one of {', '.join(REPRESENTATIONS)}, got {representation!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise UntwineError(f"batch size must be a positive integer, got {batch_size!r}")
        self.model, self.representation = model, representation
        self.device = torch.device(device) if device is not None else model_device(model)
        self.batch_size = int(batch_size)
        self.gen = torch.Generator().manual_seed(int(seed))

    # -- one batch ---------------------------------------------------------------------
    def _mean_is_posterior(self) -> bool:
        # the base class defines encode(x) as encode_dist(x)[0]; a model overriding it is asked directly
        from untwine.models.base import DisentanglingModel

        enc = getattr(type(self.model), "encode", None)
        return isinstance(self.model, DisentanglingModel) and enc is DisentanglingModel.encode

    def from_posterior(self, mean: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
        """The chosen representation given the posterior (draws from this encoder's generator)."""
        if self.representation == "mean" or logvar is None:
            return mean
        eps = torch.randn(mean.shape, generator=self.gen).to(mean.device, mean.dtype)
        return mean + torch.exp(0.5 * logvar) * eps

    @torch.no_grad()
    def batch(self, x, *, posterior: bool = False):
        """``(codes, (mean, logvar) or None)`` of one batch, as float32 tensors on the device."""
        x = as_batch(x).to(self.device)
        if self.precision == "float32":
            return self._batch(x, posterior)
        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            codes, post = self._batch(x, posterior)
        as32 = (lambda t: None if t is None else t.float())
        return codes.float(), (None if post is None else (as32(post[0]), as32(post[1])))

    def _batch(self, x: torch.Tensor, posterior: bool):
        if self.representation == "mean" and not self._mean_is_posterior():
            codes = self.model.encode(x)
            return codes, (self.model.encode_dist(x) if posterior else None)
        mean, logvar = self.model.encode_dist(x)
        return self.from_posterior(mean, logvar), (mean, logvar)

    def __call__(self, x) -> np.ndarray:
        """Codes ``[n, D]`` (float64 numpy) of one batch ``x``."""
        return _np(self.batch(x)[0])

    # -- many batches ------------------------------------------------------------------
    def encode(self, x, *, posterior: bool = False, reconstruct: bool = False, binary: bool = False,
               advance=None, predict: bool = False) -> Encoded:
        """Encode observations ``x`` ``[N, ...]`` in batches (see the module docstring);
        ``advance(n)`` is called after each batch of ``n`` observations."""
        n = len(x)
        return self._encode((x[s:s + self.batch_size] for s in range(0, n, self.batch_size)), n,
                            posterior=posterior, reconstruct=reconstruct, binary=binary, advance=advance,
                            predict=predict)

    def encode_factors(self, dataset, factors, *, posterior: bool = False, reconstruct: bool = False,
                       advance=None, predict: bool = False) -> Encoded:
        """Render ``dataset.observations`` of factor rows ``[N, K]`` batch by batch and encode them."""
        return self._encode_rendered(dataset, dataset.observations, np.asarray(factors), posterior, reconstruct,
                                     advance, predict)

    def encode_indices(self, dataset, indices, *, posterior: bool = False, reconstruct: bool = False,
                       advance=None, predict: bool = False) -> Encoded:
        """Render ``dataset.observations_at`` flat indices ``[N]`` (as ``sample_indices`` draws
        them) batch by batch and encode them."""
        return self._encode_rendered(dataset, dataset.observations_at, np.asarray(indices), posterior, reconstruct,
                                     advance, predict)

    def _encode_rendered(self, dataset, render, rows: np.ndarray, posterior: bool, reconstruct: bool, advance,
                         predict: bool = False) -> Encoded:
        n = rows.shape[0]
        batches = (render(rows[s:s + self.batch_size]) for s in range(0, n, self.batch_size))
        return self._encode(batches, n, posterior=posterior, reconstruct=reconstruct, binary=bool(dataset.binary),
                            advance=advance, predict=predict)

    def _encode(self, batches, n: int, *, posterior: bool, reconstruct: bool, binary: bool, advance=None,
                predict: bool = False) -> Encoded:
        if reconstruct:
            from untwine.models.base import has_decoder

            if not has_decoder(self.model):
                raise UntwineError(f"{getattr(self.model, 'name', 'this model')} has no decoder: nothing to reconstruct")
        if predict and not callable(getattr(self.model, "predict", None)):
            raise UntwineError(f"{getattr(self.model, 'name', 'this model')} has no factor heads: nothing predicts the factors")
        was_training = getattr(self.model, "training", False)
        self.model.eval()
        codes, means, logvars, predictions = [], [], [], []
        deterministic = False
        loss_sum, se_sum, n_el = 0.0, 0.0, 0
        try:
            for xb in batches:
                xb = as_batch(xb)
                z, post = self.batch(xb, posterior=posterior)
                codes.append(_np(z))
                if posterior:
                    means.append(_np(post[0]))
                    if post[1] is None:
                        deterministic = True
                    else:
                        logvars.append(_np(post[1]))
                if reconstruct:
                    loss, se = self._reconstruction(xb, z, binary)
                    loss_sum, se_sum, n_el = loss_sum + loss, se_sum + se, n_el + xb.numel()
                if predict:
                    with torch.no_grad():
                        predictions.append(self.model.predict(xb.to(self.device)).cpu().numpy().astype(np.int64))
                if advance is not None:
                    advance(xb.shape[0])
        finally:
            self.model.train(was_training)
        if not codes:
            raise UntwineError("nothing to encode (no observations)")
        out = Encoded(np.concatenate(codes, axis=0))
        if posterior:
            out.mean = np.concatenate(means, axis=0)
            out.logvar = None if deterministic else np.concatenate(logvars, axis=0)
        if reconstruct:
            out.reconstruction = {"reconstruction": loss_sum / n, "reconstruction_mse": se_sum / max(n_el, 1)}
        if predict:
            out.predictions = np.concatenate(predictions, axis=0)
        return out

    @torch.no_grad()
    def _reconstruction(self, x: torch.Tensor, z: torch.Tensor, binary: bool) -> tuple[float, float]:
        xd = x.to(z.device)
        p = self.model.decode(z).reshape(xd.shape).double()
        xd = xd.double()
        kind = (getattr(self.model, "hparams", None) or {}).get("reconstruction")
        if kind == "bernoulli" or (kind not in ("bernoulli", "gaussian") and binary):
            pc = p.clamp(1e-7, 1 - 1e-7)
            per = -(xd * torch.log(pc) + (1 - xd) * torch.log1p(-pc))
        else:
            per = (p - xd) ** 2
        return float(per.reshape(per.shape[0], -1).sum(1).sum()), float(((p - xd) ** 2).sum())


@torch.no_grad()
def decode_codes(model, z, *, batch_size: int = 256) -> np.ndarray:
    """Decode codes ``[N, D]`` to float32 observations ``[N, ...]`` (eval mode, in batches); one
    :class:`UntwineError` line for a model without a decoder."""
    from untwine.models.base import has_decoder

    if not has_decoder(model):
        raise UntwineError(f"{getattr(model, 'name', 'this model')} has no decoder: nothing maps codes back to observations")
    dev = model_device(model)
    was_training = model.training
    model.eval()
    out = []
    try:
        z = np.asarray(z, dtype=np.float32)
        for i in range(0, len(z), batch_size):
            out.append(model.decode(torch.from_numpy(z[i : i + batch_size]).to(dev)).detach().float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out)
