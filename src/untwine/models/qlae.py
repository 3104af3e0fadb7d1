"""QLAE: the quantized-latent autoencoder.

References: Hsu et al., "Disentanglement via Latent Quantization", NeurIPS 2023,
and its code (github.com/kylehkhsu/latent_quantization: ``latents/quantized.py``
``QuantizedLatent``, ``models/quantized_ae.py`` ``QuantizedAE``,
``models/ae.py`` ``construct_optimizer``/``param_labels``,
``configs/model_partial/quantized_ae.yaml``, ``configs/train_ae.yaml``).

* Each latent dimension ``l`` has its own learnable scalar codebook of
  ``num_values`` values, initialised evenly spaced in [-0.5, 0.5].
* The encoder's continuous output ``z`` is quantised to the nearest value of its
  dimension's codebook; the decoder sees ``z + stopgrad(q - z)`` (value ``q``,
  straight-through gradient to the encoder).
* ``loss = recon + lambda_quantize * mean((stopgrad(z) - q)^2)
  + lambda_commit * mean((z - stopgrad(q))^2)`` with the reconstruction loss a
  per-pixel *mean* (Bernoulli cross-entropy or squared error) and the two
  code losses means over latents, everything averaged over the batch;
  defaults 0.01 / 0.01.
* Optimiser: as the reference, weights (every parameter but biases and codebooks) get AdamW
  (learning rate 1e-3, weight decay 0.1) after element-wise gradient clipping
  at 1; biases and the codebooks get plain Adam (no decay, no clipping) at the
  same learning rate.  Both are one ``torch.optim.AdamW`` with two groups.
* ``num_latents`` defaults to twice the number of factors when known, else 10.
* Reconstruction: the Bernoulli cross-entropy (the reference's
  ``binary_cross_entropy_loss``, for every data set) by default.
* Architecture: ``architecture="dlib"`` (the default) trains QLAE on
  disentanglement_lib's network like every other untwine model, so objectives
  are compared on one network.  The paper's results come from its own, larger
  encoder and style decoder, ``architecture="lq"``
  (:mod:`untwine.models.architectures`), trained at batch size 128 (the
  reference's ``data.batch_size``; untwine's default is 64) for 200,000 steps
  (``optim.num_steps``): ``untwine train qlae --dataset shapes3d --set
  architecture=lq --batch-size 128 --steps 200000`` reproduces the paper's
  set-up.  Parameters decayed by AdamW are, as the reference's labels, all but
  biases and codebooks (layer and norm weights, the style decoder's input map).

``encode`` (and ``encode_dist``) return the quantised code; ``encode_continuous``
the encoder's output before quantisation.  The model uses no randomness.
"""

from __future__ import annotations

import torch
from torch import nn

from untwine.models.common import COMMON_HPARAMS, AutoencoderModel, HParam, terms_to_floats


def quantize(z: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codebook value per dimension: ``z [n, D]``, ``values [D, K]`` -> ``(q [n, D], index [n, D])``.

    Ties go to the lower index.  ``q`` carries gradients to ``values`` only.
    """
    index = (z.detach()[:, :, None] - values.detach()[None, :, :]).abs().argmin(dim=2)
    q = torch.gather(values.expand(z.shape[0], -1, -1), 2, index[:, :, None]).squeeze(2)
    return q, index


class QLAE(AutoencoderModel):
    """Quantized-latent autoencoder."""

    name = "qlae"
    gaussian = False
    reconstruction_reduction = "mean"
    HPARAMS = {
        **COMMON_HPARAMS,
        "num_latents": HParam(None, int, "number of latents (None: 2 x factors when known, else 10)", positive=True, optional=True),
        "num_values": HParam(10, int, "codebook size per latent dimension", positive=True),
        "lambda_quantize": HParam(0.01, float, "weight of the quantization (codebook) loss", low=0.0),
        "lambda_commit": HParam(0.01, float, "weight of the commitment loss", low=0.0),
        "learning_rate": HParam(1e-3, float, "AdamW learning rate", positive=True),
        "weight_decay": HParam(0.1, float, "AdamW weight decay on weights (not biases or codebooks)", low=0.0),
        "grad_clip": HParam(1.0, float, "element-wise gradient clipping of the weights", positive=True),
    }

    def __init__(self, observation_shape, **kwargs) -> None:
        super().__init__(observation_shape, **kwargs)
        k = self.hparams["num_values"]
        self.codebook = nn.Parameter(torch.linspace(-0.5, 0.5, k).repeat(self.num_latents, 1))

    @classmethod
    def default_num_latents(cls, num_factors: int | None) -> int:
        return 2 * num_factors if num_factors else 10

    def encode_continuous(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)[0]

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return quantize(self.encode_continuous(x), self.codebook)[0], None

    def forward_codes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Continuous code, its quantisation, the straight-through code and the indices."""
        z = self.encode_continuous(x)
        q, index = quantize(z, self.codebook)
        return {"z_continuous": z, "z_quantized": q, "z_hat": z + (q - z).detach(), "index": index}

    def loss_terms(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        codes = self.forward_codes(x)
        z, q = codes["z_continuous"], codes["z_quantized"]
        recon = self.reconstruction_loss(x, self.decoder(codes["z_hat"]))
        quant = (z.detach() - q).square().mean()
        commit = (z - q.detach()).square().mean()
        hp = self.hparams
        loss = recon + hp["lambda_quantize"] * quant + hp["lambda_commit"] * commit
        return {"loss": loss, "reconstruction": recon, "quantization": quant, "commitment": commit}

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """``(decayed, undecayed)``: everything else vs. biases and codebooks (as the reference's labels)."""
        decayed, plain = [], []
        for name, p in self.named_parameters():
            (plain if name.endswith("bias") or name == "codebook" else decayed).append(p)
        return decayed, plain

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        hp = self.hparams
        decayed, plain = self.parameter_groups()
        opt = torch.optim.AdamW(
            [{"params": decayed, "weight_decay": hp["weight_decay"]}, {"params": plain, "weight_decay": 0.0}],
            lr=hp["learning_rate"],
            betas=(hp["adam_beta1"], hp["adam_beta2"]),
            eps=hp["adam_epsilon"],
        )
        return {"model": opt}

    def training_step(self, x: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        opt = optimizers["model"]
        opt.zero_grad(set_to_none=True)
        terms = self.loss_terms(x, step)
        terms["loss"].backward()
        torch.nn.utils.clip_grad_value_(opt.param_groups[0]["params"], self.hparams["grad_clip"])
        opt.step()
        return terms_to_floats(terms)
