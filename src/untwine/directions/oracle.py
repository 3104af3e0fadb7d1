"""The oracle: a small CNN that reads the factors of an image, trained on the dataset's renderer.

Direction-finding papers judge directions by eye; on data whose factors are known, an
oracle can read the factors of every decoded image instead.  :func:`get_oracle` returns the
oracle of an image dataset with known factors, training it on first use on observations
drawn from the dataset itself (for the built-in datasets: the procedural renderer) and
caching its weights:

    $UNTWINE_CACHE/oracles/<dataset>-<version>.safetensors   (default cache: ~/.cache/untwine)

``<version>`` is a hash of the oracle's settings, the factor sizes, the observation shape and
the pixels of a fixed probe of rendered images, so a changed renderer (a new dataset version)
gets a new oracle.  The file is written atomically (:mod:`untwine.files`) and carries the
oracle's held-out accuracy per factor in its metadata; ``untwine directions`` reports it.

Network: four stride-2 ReLU convolutions (32, 32, 64, 64 filters, kernel 4), average-pooled to
4 x 4, a 256-unit ReLU layer and one softmax head per factor; Adam (learning rate 1e-3), batch 64,
:data:`DEFAULT_STEPS` steps on freshly drawn batches (the renderer gives unlimited data).
Accuracy is measured on :data:`TEST_SIZE` drawn images (seed distinct from training): exact,
and within one class for the factors with more than two values (orientation of a square is
only defined modulo 90 degrees, so its exact accuracy stays low).

:meth:`Oracle.values` reads each factor of images as the expected class index under the
head's softmax, divided by ``size - 1`` (a number in [0, 1] per factor; 0 for one-valued
factors): the quantity whose change along a direction scoring measures.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from untwine.errors import UntwineError
from untwine.files import atomic_write_bytes

#: bump when the network or its training changes: old cache files are then not reused
ORACLE_FORMAT = 1
DEFAULT_STEPS = 2000
BATCH_SIZE = 64
TEST_SIZE = 2000
LEARNING_RATE = 1e-3


def cache_dir() -> Path:
    """``$UNTWINE_CACHE/oracles`` or ``~/.cache/untwine/oracles``."""
    root = os.environ.get("UNTWINE_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "untwine"
    return base / "oracles"


class OracleNet(nn.Module):
    """Images ``[n, C, H, W]`` -> logits of every factor, concatenated ``[n, sum(sizes)]``."""

    def __init__(self, channels: int, factor_sizes) -> None:
        super().__init__()
        self.factor_sizes = [int(s) for s in factor_sizes]
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 4, 2, 1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(64 * 16, 256), nn.ReLU(inplace=True),
            nn.Linear(256, sum(self.factor_sizes)),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.net(x).split(self.factor_sizes, dim=1))


def check_dataset(dataset) -> None:
    """One error line when ``dataset`` cannot have an oracle (not images with known factors)."""
    name = getattr(dataset, "name", type(dataset).__name__)
    shape = tuple(getattr(dataset, "observation_shape", ()))
    if len(shape) != 3 or min(shape[1:]) < 16:
        raise UntwineError(
            f"dataset {name!r} has no oracle: oracles read images [C, H, W] of at least 16 x 16 pixels, "
            f"its observations are {list(shape)}"
        )
    sizes = tuple(getattr(dataset, "factor_sizes", ()))
    if not sizes or max(sizes) < 2:
        raise UntwineError(f"dataset {name!r} has no oracle: it has no factor with two or more values")


def check_steps(steps) -> int:
    """``steps`` as an int; one error line unless it is a positive integer (an untrained oracle reads nothing)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise UntwineError(f"--oracle-steps must be a positive integer, got {steps!r}")
    return int(steps)


def warn_if_near_chance(oracle: "Oracle") -> None:
    """A ``warning:`` line naming the factors the oracle reads no better than 1.5 x chance."""
    import warnings

    from untwine.errors import UntwineWarning

    weak = [name for name, size in zip(oracle.factor_names, oracle.factor_sizes)
            if size > 1 and name in oracle.accuracy and oracle.accuracy[name] <= 1.5 / size]
    if weak:
        warnings.warn(f"the oracle reads {', '.join(weak)} barely above chance (held-out accuracy); the scores of "
                      "these factors are unreliable: give more --oracle-steps", UntwineWarning, stacklevel=2)


def dataset_version(dataset, steps: int) -> str:
    """A short hash of what the oracle learns from (see the module docstring)."""
    h = hashlib.sha256()
    h.update(json.dumps({"format": ORACLE_FORMAT, "steps": int(steps), "sizes": list(map(int, dataset.factor_sizes)),
                         "shape": list(map(int, dataset.observation_shape))}).encode())
    probe = np.stack([np.arange(8) % int(s) for s in dataset.factor_sizes], axis=1).astype(np.int64)
    probe = np.concatenate([probe, np.zeros((1, probe.shape[1]), np.int64), np.asarray([dataset.factor_sizes]) - 1])
    x = np.asarray(torch.as_tensor(dataset.observations(probe)).float().numpy(), dtype=np.float32)
    h.update(np.round(x, 4).tobytes())
    return h.hexdigest()[:12]


@dataclass
class Oracle:
    """A trained oracle: the network, the factor names/sizes and its held-out accuracy."""

    net: OracleNet
    factor_names: list[str]
    factor_sizes: list[int]
    accuracy: dict[str, float] = field(default_factory=dict)
    accuracy_within_one: dict[str, float] = field(default_factory=dict)
    path: Path | None = None
    trained_now: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @torch.no_grad()
    def probabilities(self, images, *, batch_size: int = 500) -> list[np.ndarray]:
        """Per factor, the class probabilities ``[N, size]`` of images ``[N, C, H, W]`` in [0, 1]."""
        self.net.eval()
        x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images).float()
        out = [[] for _ in self.factor_sizes]
        for s in range(0, len(x), batch_size):
            for k, logits in enumerate(self.net(x[s:s + batch_size].to(self.device))):
                out[k].append(torch.softmax(logits.double(), dim=1).cpu().numpy())
        return [np.concatenate(o) for o in out]

    def values(self, images, **kw) -> np.ndarray:
        """Each factor of images as a number in [0, 1]: expected class index / (size - 1), ``[N, K]``."""
        cols = []
        for p, s in zip(self.probabilities(images, **kw), self.factor_sizes):
            cols.append(p @ np.arange(s) / (s - 1) if s > 1 else np.zeros(len(p)))
        return np.stack(cols, axis=1)

    def predict(self, images, **kw) -> np.ndarray:
        """The most probable class of each factor, ``[N, K]`` int64."""
        return np.stack([p.argmax(axis=1) for p in self.probabilities(images, **kw)], axis=1)

    def summary(self) -> dict:
        return {"path": str(self.path) if self.path else None, "accuracy": self.accuracy,
                "accuracy_within_one": self.accuracy_within_one,
                "chance": {n: 1.0 / s for n, s in zip(self.factor_names, self.factor_sizes) if n in self.accuracy},
                "mean_accuracy": float(np.mean(list(self.accuracy.values()))) if self.accuracy else None}


def _accuracies(oracle: Oracle, dataset, seed: int, n: int) -> tuple[dict[str, float], dict[str, float]]:
    f, x = dataset.sample(n, np.random.default_rng([int(seed), 7919]))
    pred = oracle.predict(x)
    exact = {name: float((pred[:, k] == f[:, k]).mean()) for k, name in enumerate(oracle.factor_names)}
    near = {name: float((np.abs(pred[:, k] - f[:, k]) <= 1).mean())
            for k, name in enumerate(oracle.factor_names) if oracle.factor_sizes[k] > 2}
    return exact, near


def train_oracle(dataset, *, steps: int = DEFAULT_STEPS, seed: int = 0, device="cpu", test_size: int = TEST_SIZE,
                 log=None) -> tuple[Oracle, list[float]]:
    """Train an oracle on observations drawn from ``dataset``; returns it and its per-step losses."""
    check_dataset(dataset)
    steps = check_steps(steps)
    device = torch.device(device)
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    net = OracleNet(int(dataset.observation_shape[0]), dataset.factor_sizes).to(device)
    torch.set_rng_state(state)
    opt = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    losses = []
    net.train()
    for step in range(int(steps)):
        f, x = dataset.sample(BATCH_SIZE, np.random.default_rng([int(seed), step]))
        x = torch.as_tensor(x).float().to(device)
        f = torch.as_tensor(f).to(device)
        loss = sum(nn.functional.cross_entropy(lg, f[:, k]) for k, lg in enumerate(net(x)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if log is not None and (step + 1) % max(1, steps // 10) == 0:
            log(f"oracle for {dataset.name}: step {step + 1}/{steps}  loss {np.mean(losses[-50:]):.3f}")
    net.eval()
    oracle = Oracle(net, [str(n) for n in dataset.factor_names], [int(s) for s in dataset.factor_sizes])
    oracle.accuracy, oracle.accuracy_within_one = _accuracies(oracle, dataset, seed, test_size)
    oracle.trained_now = True
    return oracle, losses


def oracle_path(dataset, steps: int = DEFAULT_STEPS) -> Path:
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in str(getattr(dataset, "name", "dataset")))
    return cache_dir() / f"{name}-{dataset_version(dataset, steps)}.safetensors"


def save_oracle(oracle: Oracle, path) -> Path:
    from safetensors.torch import save

    meta = {"factor_names": json.dumps(oracle.factor_names), "factor_sizes": json.dumps(oracle.factor_sizes),
            "accuracy": json.dumps(oracle.accuracy), "accuracy_within_one": json.dumps(oracle.accuracy_within_one),
            "format": str(ORACLE_FORMAT)}
    tensors = {k: v.detach().cpu().contiguous() for k, v in oracle.net.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata=meta))
    oracle.path = Path(path)
    return Path(path)


def load_oracle(path, device="cpu") -> Oracle:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (a safetensors handle)
        names, sizes = json.loads(meta["factor_names"]), json.loads(meta["factor_sizes"])
        channels = int(tensors["net.0.weight"].shape[1])
        net = OracleNet(channels, sizes)
        net.load_state_dict(tensors)
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise UntwineError(f"{path}: not a readable oracle ({exc}); delete it to retrain") from None
    net.to(torch.device(device)).eval()
    return Oracle(net, names, [int(s) for s in sizes], json.loads(meta.get("accuracy", "{}")),
                  json.loads(meta.get("accuracy_within_one", "{}")), Path(path))


def get_oracle(dataset, *, steps: int = DEFAULT_STEPS, device="cpu", retrain: bool = False, log=None) -> Oracle:
    """The cached oracle of ``dataset`` (trained and cached on first use; see the module docstring);
    warns when it reads a factor barely above chance."""
    check_dataset(dataset)
    steps = check_steps(steps)
    path = oracle_path(dataset, steps)
    if path.is_file() and not retrain:
        oracle = load_oracle(path, device)
    else:
        if log is not None:
            log(f"training the oracle for {dataset.name} ({steps} steps; cached in {path})")
        oracle, _ = train_oracle(dataset, steps=steps, device=device, log=log)
        save_oracle(oracle, path)
    warn_if_near_chance(oracle)
    return oracle
