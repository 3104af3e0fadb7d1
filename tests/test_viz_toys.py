"""Tiny stand-ins used by the viz/report tests: a blob dataset and models that read it.

``Blobs``: a 32x32 Gaussian blob whose row, column and width are the factors.
``BlobVAE``: a Gaussian "encoder" that measures the blob (centroid and width: three
active latents) plus two passive latents (mean ~ 0, logvar ~ 0); its decoder draws the
blob back.  ``BlobQuantized``: the deterministic variant with a per-latent codebook.
"""

from __future__ import annotations

import numpy as np
import torch

from untwine.data.base import GroundTruthDataset
from untwine.models.base import DisentanglingModel

SIZE = 32


def render(cy, cx, sigma) -> torch.Tensor:
    """Blobs ``[n, 1, 32, 32]`` centred at (cy, cx) with width sigma (tensors of length n)."""
    g = torch.arange(SIZE, dtype=torch.float32)
    dy = (g[None, :] - cy[:, None]) ** 2  # [n, H]
    dx = (g[None, :] - cx[:, None]) ** 2  # [n, W]
    s2 = 2 * sigma[:, None, None] ** 2
    img = torch.exp(-(dy[:, :, None] + dx[:, None, :]) / s2)
    return img[:, None]


class Blobs(GroundTruthDataset):
    name = "blobs"
    factor_names = ("pos_y", "pos_x", "width")
    factor_sizes = (6, 6, 3)
    observation_shape = (1, SIZE, SIZE)

    def observations(self, factors) -> torch.Tensor:
        f = torch.as_tensor(np.asarray(factors), dtype=torch.float32)
        return render(11 + 2 * f[:, 0], 11 + 2 * f[:, 1], 1 + 0.5 * f[:, 2])


class BlobVAE(DisentanglingModel):
    name = "blob_vae"
    num_latents = 5
    passive = (3, 4)

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))  # one parameter so the model has a device

    def measure(self, x):
        w = x[:, 0].clamp_min(0)
        tot = w.sum(dim=(1, 2)).clamp_min(1e-8)
        g = torch.arange(SIZE, dtype=torch.float32, device=x.device)
        cy = (w.sum(2) * g).sum(1) / tot
        cx = (w.sum(1) * g).sum(1) / tot
        width = (tot / (2 * np.pi)).sqrt()  # sum of a Gaussian = 2 pi sigma^2
        return (cy - 16) / 2.5, (cx - 16) / 2.5, (width - 1.5) / 0.5

    def encode_dist(self, x):
        a, b, c = self.measure(x)
        # passive means: nearly constant, moving together (a little non-linearly, so that the
        # covariance of the codes is not singular)
        tiny = 0.01 * (a + b)
        mean = torch.stack([a, b, c, tiny + 0.002 * torch.sin(3 * c), -tiny + 0.002 * torch.cos(5 * a)], dim=1)
        mean = mean * self.scale
        logvar = torch.full_like(mean, 2 * np.log(0.05))
        logvar[:, 3:] = 0.0
        return mean, logvar

    def decode(self, z):
        return render(16 + 2.5 * z[:, 0], 16 + 2.5 * z[:, 1], (1.5 + 0.5 * z[:, 2]).clamp_min(0.3))

    def make_optimizers(self):
        return {"model": torch.optim.SGD(self.parameters(), lr=0.0)}

    def training_step(self, x, step, optimizers):
        return {"loss": 0.0}


class BlobQuantized(BlobVAE):
    """Deterministic codes on a per-latent codebook ``codebook`` [D, V] (like QLAE)."""

    name = "blob_quantized"

    def __init__(self, num_values: int = 7) -> None:
        super().__init__()
        self.codebook = torch.nn.Parameter(torch.linspace(-2, 2, num_values).repeat(self.num_latents, 1))

    def encode_dist(self, x):
        mean, _ = super().encode_dist(x)
        idx = (mean[:, :, None] - self.codebook[None]).abs().argmin(dim=2)
        q = torch.gather(self.codebook.expand(len(mean), -1, -1), 2, idx[:, :, None])[:, :, 0]
        return q, None


def test_blob_vae_measures_the_factors():
    ds = Blobs()
    f, x = ds.sample(50, np.random.default_rng(0))
    with torch.no_grad():
        mean, logvar = BlobVAE().encode_dist(x)
    # centroid follows pos_y / pos_x exactly up to the affine map (blobs stay inside the image)
    np.testing.assert_allclose(mean[:, 0].numpy(), (11 + 2 * f[:, 0] - 16) / 2.5, atol=0.05)
    np.testing.assert_allclose(mean[:, 1].numpy(), (11 + 2 * f[:, 1] - 16) / 2.5, atol=0.05)
    assert logvar.shape == (50, 5)
    # decoding the measurement gives the image back
    with torch.no_grad():
        assert float((BlobVAE().decode(mean) - x).abs().max()) < 0.05


def test_blob_quantized_codes_lie_on_the_codebook():
    ds = Blobs()
    _, x = ds.sample(20, np.random.default_rng(1))
    m = BlobQuantized()
    q, lv = m.encode_dist(x)
    assert lv is None
    cb = m.codebook.detach()
    assert torch.all((q[:, :, None] - cb[None]).abs().min(dim=2).values == 0)
