"""InfoWGAN-GP and QLInfoWGAN-GP: the GAN models of the latent-quantization paper.

References: Hsu et al., "Disentanglement via Latent Quantization", NeurIPS 2023, and its
code (github.com/kylehkhsu/latent_quantization: ``models/info_gan.py`` ``InfoGAN``,
``models/quantized_info_gan.py`` ``QuantizedInfoGAN``, ``encoders/critic.py``,
``latents/continuous.py`` ``UniformLatent``, ``latents/quantized.py``,
``configs/model_partial/info_gan.yaml`` / ``quantized_info_gan.yaml``, ``configs/train_gan.yaml``);
Gulrajani et al., "Improved Training of Wasserstein GANs", NeurIPS 2017 (gradient penalty);
Chen et al., "InfoGAN", NeurIPS 2016 (latent prediction head).

* Generator: the model's ``decoder`` (disentanglement_lib's deconvolutional decoder for
  images, so its first layer is ``decoder.fc.0``); ``decode(z) = sigmoid(decoder(z))``.
* Critic and InfoGAN head share one trunk (the convolutional encoder's features): a
  linear *value* head (the Wasserstein critic) and the latent head, which predicts the
  latent that generated an image.  The head is the model's encoder:
  ``encode_dist(x) = (predicted latent, None)``.
* Latents: InfoWGAN-GP samples ``z ~ U[0, 1)^D`` (``UniformLatent``); QLInfoWGAN-GP
  samples each dimension uniformly from its own learnable scalar codebook of
  ``num_values`` values (initialised evenly in [-0.5, 0.5]), and quantises the head's
  prediction to the nearest codebook value (straight-through), as QLAE does.
* Critic loss: ``value(fake) - value(real) + lambda_gradient * (||grad_x value(x_mix)|| - 1)^2
  + lambda_latent * mean((head(fake) - z)^2)`` (+ for QL ``lambda_quantize`` / ``lambda_commit``
  times the codebook / commitment losses of the head's continuous prediction), with
  ``x_mix`` a uniform random mix of a real and a generated image.
* Generator loss: ``-value(fake) + lambda_latent * mean((head(fake) - z)^2)`` (+ the same
  QL terms).  Both average over the batch.
* Schedule: one untwine step is one critic update on its batch; every ``critic_steps``-th
  step (default 5, the reference's ``generator_step_period``) also updates the generator,
  so the generator is trained once per 5 critic steps.  ``--steps`` counts critic steps,
  as the reference's ``num_steps`` does.
* Optimisers (``"critic"`` and ``"generator"``, checkpointed by name): Adam with learning
  rate 2e-4, betas 0 / 0.9; as the reference, layer weights get AdamW's decoupled weight
  decay ``l2 = 1e-4`` after element-wise gradient clipping at 1, biases and codebooks
  plain Adam.  The codebook is trained by the generator's optimiser.
* Defaults from ``info_gan.yaml`` / ``quantized_info_gan.yaml``: ``lambda_gradient`` 10,
  ``lambda_latent`` 200, ``lambda_value`` 1, ``weight_decay`` 1e-4, ``lambda_quantize`` /
  ``lambda_commit`` 0.01, ``num_values`` 10; ``num_latents`` twice the number of factors
  (the sweep's ``twice_sources``), 10 when unknown.

Randomness: latents, mixing weights and codebook draws come from torch's global RNG on the
batch's device, so reseeding torch reproduces a run.
"""

from __future__ import annotations

import torch
from torch import nn

from untwine.errors import UntwineError
from untwine.models.architectures import (
    make_decoder,
    make_encoder,
)
from untwine.models.base import DisentanglingModel
from untwine.models.common import HParam, model_arguments, terms_to_floats
from untwine.models.qlae import quantize

GAN_HPARAMS: dict[str, HParam] = {
    "num_latents": HParam(None, int, "number of latents (None: 2 x factors when known, else 10)", positive=True, optional=True),
    "learning_rate": HParam(2e-4, float, "Adam learning rate of critic and generator", positive=True),
    "adam_beta1": HParam(0.0, float, "Adam beta1", low=0.0),
    "adam_beta2": HParam(0.9, float, "Adam beta2", low=0.0),
    "adam_epsilon": HParam(1e-8, float, "Adam epsilon", positive=True),
    "critic_steps": HParam(5, int, "critic updates per generator update", positive=True),
    "lambda_gradient": HParam(10.0, float, "weight of the gradient penalty", low=0.0),
    "lambda_latent": HParam(200.0, float, "weight of the InfoGAN latent-prediction loss", low=0.0),
    "lambda_value": HParam(1.0, float, "weight of the Wasserstein value terms", low=0.0),
    "weight_decay": HParam(1e-4, float, "AdamW weight decay on layer weights (the reference's l2)", low=0.0),
    "grad_clip": HParam(1.0, float, "element-wise gradient clipping of the layer weights", positive=True),
}

QL_HPARAMS: dict[str, HParam] = {
    **GAN_HPARAMS,
    "num_values": HParam(10, int, "codebook size per latent dimension (>= 2: one value is a constant code)", low=2),
    "lambda_quantize": HParam(0.01, float, "weight of the quantization (codebook) loss", low=0.0),
    "lambda_commit": HParam(0.01, float, "weight of the commitment loss", low=0.0),
}


def _check_degenerate(values: dict) -> None:
    """Refuse hyper-parameters that leave nothing to learn (one error line naming the key)."""
    for key in ("adam_beta1", "adam_beta2"):
        if not values[key] < 1:
            raise UntwineError(f"hyper-parameter {key}: must be < 1 (Adam's moment decay), got {values[key]!r}")
    if values["lambda_value"] <= 0:
        raise UntwineError("hyper-parameter lambda_value: must be > 0; without the Wasserstein terms the generator "
                           "is not trained to produce data")


class InfoWGANGP(DisentanglingModel):
    """InfoWGAN-GP: Wasserstein GAN with gradient penalty and an InfoGAN latent head."""

    name = "infowgan_gp"
    HPARAMS: dict[str, HParam] = GAN_HPARAMS
    quantized = False

    def __init__(self, observation_shape, *, binary: bool = False, num_factors: int | None = None, **hparams) -> None:
        super().__init__()
        shape, binary, num_factors, values = model_arguments(type(self), observation_shape, binary, num_factors, hparams)
        if values["num_latents"] is None:
            values["num_latents"] = 2 * num_factors if num_factors else 10
        _check_degenerate(values)
        self.hparams = {"name": self.name, "observation_shape": list(shape), "binary": binary,
                        "num_factors": num_factors, **values}
        self.num_latents = int(values["num_latents"])
        self.observation_shape = shape
        self.encoder = make_encoder(shape, self.num_latents, gaussian=False)  # trunk + latent head
        self.critic = nn.Linear(self.encoder.heads.mean.in_features, 1)
        nn.init.xavier_uniform_(self.critic.weight)
        nn.init.zeros_(self.critic.bias)
        self.decoder = make_decoder(shape, self.num_latents)  # the generator

    # -- latents -----------------------------------------------------------------------
    def sample_prior(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``n`` latents from the generator's prior ``U[0, 1)^D``."""
        dev = device if device is not None else self.decoder_device
        return torch.rand(n, self.num_latents, generator=generator).to(dev)

    @property
    def decoder_device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    # -- networks ----------------------------------------------------------------------
    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder.features(x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x)

    def head(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """The latent prediction of trunk features ``h``: ``{"z_hat": ...}`` (+ QL's parts)."""
        return {"z_hat": self.encoder.heads.mean(h)}

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(self.features(x)).squeeze(1)

    def encode_dist(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.head(self.features(x))["z_hat"], None

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z))

    # -- objective ---------------------------------------------------------------------
    def _latent_terms(self, head: dict[str, torch.Tensor], z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"latent": (head["z_hat"] - z).square().mean()}

    def _weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.hparams["lambda_latent"] * terms["latent"]

    def critic_terms(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The critic's loss terms on real batch ``x`` (a fresh generated batch of the same size)."""
        hp = self.hparams
        n = x.shape[0]
        z = self.sample_prior(n, device=x.device)
        with torch.no_grad():
            fake = self.decode(z)
        h_real, h_fake = self.features(x), self.features(fake)
        value_loss = (self.critic(h_fake) - self.critic(h_real)).mean()
        eps = torch.rand((n,) + (1,) * (x.ndim - 1), device=x.device)
        mix = (eps * x + (1 - eps) * fake).requires_grad_(True)
        grad = torch.autograd.grad(self.value(mix).sum(), mix, create_graph=True)[0]
        gradient = (grad.reshape(n, -1).norm(dim=1) - 1).square().mean()
        terms = self._latent_terms(self.head(h_fake), z)
        loss = hp["lambda_value"] * value_loss + hp["lambda_gradient"] * gradient + self._weighted(terms)
        return {"critic_loss": loss, "value": value_loss, "gradient_penalty": gradient, **terms}

    def generator_terms(self, n: int, device) -> dict[str, torch.Tensor]:
        """The generator's loss terms on ``n`` generated images."""
        z = self.sample_prior(n, device=device)
        fake = self.decode(z)
        h = self.features(fake)
        terms = self._latent_terms(self.head(h), z)
        loss = -self.hparams["lambda_value"] * self.critic(h).mean() + self._weighted(terms)
        return {"generator_loss": loss, **{f"generator_{k}": v for k, v in terms.items()}}

    def loss_terms(self, x: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        terms = self.critic_terms(x)
        terms.update(self.generator_terms(x.shape[0], x.device))
        terms["loss"] = terms["critic_loss"]
        return terms

    # -- optimisation ------------------------------------------------------------------
    def critic_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(f"encoder.{k}", p) for k, p in self.encoder.named_parameters()] + \
               [(f"critic.{k}", p) for k, p in self.critic.named_parameters()]

    def generator_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(f"decoder.{k}", p) for k, p in self.decoder.named_parameters()]

    def _optimizer(self, named: list[tuple[str, nn.Parameter]]) -> torch.optim.Optimizer:
        hp = self.hparams
        decayed = [p for k, p in named if k.endswith("weight")]
        plain = [p for k, p in named if not k.endswith("weight")]
        return torch.optim.AdamW(
            [{"params": decayed, "weight_decay": hp["weight_decay"]}, {"params": plain, "weight_decay": 0.0}],
            lr=hp["learning_rate"], betas=(hp["adam_beta1"], hp["adam_beta2"]), eps=hp["adam_epsilon"],
        )

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self._optimizer(self.critic_parameters()),
                "generator": self._optimizer(self.generator_parameters())}

    def _step(self, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        clipped = [p for p in opt.param_groups[0]["params"] if p.grad is not None]
        if clipped:
            torch.nn.utils.clip_grad_value_(clipped, self.hparams["grad_clip"])
        opt.step()

    def training_step(self, x: torch.Tensor, step: int, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, float]:
        for opt in optimizers.values():
            opt.zero_grad(set_to_none=True)
        terms = self.critic_terms(x)
        self._step(optimizers["critic"], terms["critic_loss"])
        out = {"loss": terms["critic_loss"], **terms}
        if (int(step) + 1) % self.hparams["critic_steps"] == 0:
            gen = self.generator_terms(x.shape[0], x.device)
            self._step(optimizers["generator"], gen["generator_loss"])
            optimizers["critic"].zero_grad(set_to_none=True)  # the generator step's critic gradients are unused
            out.update(gen)
        return terms_to_floats(out)


class QLInfoWGANGP(InfoWGANGP):
    """QLInfoWGAN-GP: InfoWGAN-GP with per-dimension scalar codebooks (latent quantization)."""

    name = "qlinfowgan_gp"
    HPARAMS = QL_HPARAMS
    quantized = True

    def __init__(self, observation_shape, **kwargs) -> None:
        super().__init__(observation_shape, **kwargs)
        k = self.hparams["num_values"]
        self.codebook = nn.Parameter(torch.linspace(-0.5, 0.5, k).repeat(self.num_latents, 1))

    def sample_prior(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``n`` latents, each dimension a uniformly drawn value of its codebook (differentiable in the values)."""
        dev = device if device is not None else self.codebook.device
        idx = torch.randint(self.codebook.shape[1], (n, self.num_latents), generator=generator).to(self.codebook.device)
        return torch.gather(self.codebook.expand(n, -1, -1), 2, idx[:, :, None]).squeeze(2).to(dev)

    def head(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.encoder.heads.mean(h)
        q, _ = quantize(z, self.codebook)
        return {"z_hat": z + (q - z).detach(), "z_continuous": z, "z_quantized": q}

    def _latent_terms(self, head: dict[str, torch.Tensor], z: torch.Tensor) -> dict[str, torch.Tensor]:
        zc, q = head["z_continuous"], head["z_quantized"]
        return {"latent": (head["z_hat"] - z).square().mean(),
                "quantization": (zc.detach() - q).square().mean(),
                "commitment": (zc - q.detach()).square().mean()}

    def _weighted(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        hp = self.hparams
        return (hp["lambda_latent"] * terms["latent"] + hp["lambda_quantize"] * terms["quantization"]
                + hp["lambda_commit"] * terms["commitment"])

    def generator_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return super().generator_parameters() + [("codebook", self.codebook)]


GAN_MODELS: dict[str, type[InfoWGANGP]] = {"infowgan_gp": InfoWGANGP, "qlinfowgan_gp": QLInfoWGANGP}

