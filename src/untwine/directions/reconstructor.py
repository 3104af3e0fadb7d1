"""The reconstructor of Voynov & Babenko (2020), shared by ``voynov`` and ``potential_flow``.

A small CNN that sees an image pair ``(G(z), G(z'))`` stacked along the channels and predicts
which of ``K`` directions moved ``z`` to ``z'`` (logits) and how far (one number).  Images
``[C, H, W]`` go through four stride-2 ReLU convolutions (32, 32, 64, 64 filters, kernel 4),
average-pooled to 4 x 4, and a 256-unit layer; vectors ``[F]`` through a 256-256 ReLU MLP.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class PairReconstructor(nn.Module):
    def __init__(self, observation_shape, num_directions: int) -> None:
        super().__init__()
        shape = tuple(int(s) for s in observation_shape)
        if len(shape) == 3:
            self.trunk = nn.Sequential(
                nn.Conv2d(2 * shape[0], 32, 4, 2, 1), nn.ReLU(inplace=True),
                nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(inplace=True),
                nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(inplace=True),
                nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(inplace=True),
                nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, 256), nn.ReLU(inplace=True),
            )
        else:
            self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(2 * math.prod(shape), 256), nn.ReLU(inplace=True),
                                       nn.Linear(256, 256), nn.ReLU(inplace=True))
        self.which = nn.Linear(256, num_directions)
        self.shift = nn.Linear(256, 1)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(torch.cat([a, b], dim=1))
        return self.which(h), self.shift(h).squeeze(1)
