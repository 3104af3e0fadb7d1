"""One training loop for every architecture, and for many SAEs at once.

:func:`train_saes` trains a list of SAE specifications on one activation stream: specs
with the same architecture, width, learning rate and shared hyper-parameters become the
members of one stacked module (:class:`~untwine.sae.base.SparseAutoencoder`), so a sweep
over ``k`` or penalty coefficients runs as batched matrix products, and every module sees
the same batches: the data are read once per step for all of them.  :func:`train_sae` is
the one-SAE case.

Per step: normalise the batch (``x * s``, ``s`` = ``sqrt(d_in)`` over the mean input
norm, estimated on up to 16384 rows), compute each module's loss, remove the gradient
component parallel to unit-norm decoder rows, take an Adam step (betas 0.9, 0.999) and
renormalise the rows.  Defaults:

* decoder bias initialised at the geometric median of the (normalised) sample
  (dictionary_learning; ``b_dec_init="mean"`` uses the mean, as sparsify does);
* learning rate: linear warm-up over the first 5% of steps, constant, then linear decay
  to 0 over the last 20% (Anthropic's April 2024 update);
* a latent is dead after ``dead_rows`` rows without firing (default: a sixteenth of the
  rows trained on, at most 10M, sparsify's count); the AuxK loss revives dead latents.

Checkpoints (every module and optimiser state, the step, the configuration) are one file
written atomically (``checkpoint.pt``); an interrupted run (Ctrl-C) checkpoints the last
finished step, and ``resume=True`` continues it, reaching the weights of an
uninterrupted run (the batch order depends only on the seed and the step).
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from untwine._memory import reuse_freed_memory
from untwine.device import resolve_device  # noqa: F401  (re-exported)
from untwine.errors import UntwineError
from untwine.files import exclusive_lock, write_json
from untwine.progress import Phases, StepProgress, terms_text
from untwine.sae.adam import Adam
from untwine.sae.base import SparseAutoencoder, geometric_median
from untwine.sae.data import (
    ActivationSource,
    fingerprint,
    iter_batches,
    open_activations,
    sample_rows,
)
from untwine.sae.io import save_sae
from untwine.sae.registry import get_architecture
from untwine.sae.specs import SAESpec
from untwine.sae.runs import (
    CHECKPOINT,
    SWEEP,
    TRAINING,
    check_out_folder,
    clear_run,
    holds_run,
    load_checkpoint,
    save_checkpoint,
    tidy,
)
from untwine.sae.train_checks import (
    DIVERGED,
    check_diverged,
    check_run_options,
    check_spec,
    check_spread,
)

@dataclass
class _Group:
    key: tuple
    arch: str
    latents: int
    lr: float
    specs: list[int]
    module: SparseAutoencoder | None = None
    opt: Adam | None = None


def lr_factor(step: int, steps: int, warmup: float = 0.05, decay: float = 0.2) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``steps``."""
    w = max(1, round(warmup * steps))
    dstart = steps - round(decay * steps)
    f = min(1.0, (step + 1) / w)
    if step >= dstart and steps > dstart:
        f = min(f, (steps - step) / (steps - dstart))
    return f


def _adam(module: SparseAutoencoder, lr: float) -> Adam:
    """Adam (betas 0.9, 0.999) over the module's groups (:mod:`untwine.sae.adam`: torch's update,
    the fused kernel where this torch has it, without ``torch.optim``'s start-up cost)."""
    return Adam([dict(g, lr=lr * g["lr_scale"]) for g in module.optim_groups()], lr)


def _group_specs(specs: list[SAESpec], d_in: int, stack: bool = True) -> list[_Group]:
    """Modules to train: specs sharing architecture, width, learning rate and shared
    hyper-parameters become members of one module when ``stack``, else one module each."""
    groups: dict[tuple, _Group] = {}
    for i, s in enumerate(specs):
        cls = get_architecture(s.arch)
        check_spec(s)
        hp = cls.resolve_hparams(dict(s.hparams), d_in=d_in, d_sae=int(s.latents))
        shared = tuple(sorted((k, repr(v)) for k, v in hp.items() if k not in cls.member_hparams))
        lr = float(s.lr) if s.lr is not None else float(cls.default_lr)
        key = (s.arch, int(s.latents), lr, shared) + (() if stack else (i,))
        g = groups.setdefault(key, _Group(key, s.arch, int(s.latents), lr, []))
        g.specs.append(i)
    return list(groups.values())


class _InterruptGuard:
    """Defer SIGINT to the end of the current step (so a checkpoint is never half a step)."""

    def __init__(self):
        self.hit = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._old = signal.getsignal(signal.SIGINT)

            def handler(signum, frame):
                self.hit = True

            signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _run_config(
    specs, d_in, batch_size, seed, b_dec_init, normalize, dead_rows, warmup, decay, stack
) -> dict[str, Any]:
    return {
        "stack": bool(stack),
        "specs": [{"arch": s.arch, "latents": int(s.latents), "hparams": s.hparams, "lr": s.lr, "name": s.label()} for s in specs],
        "d_in": int(d_in),
        "batch_size": int(batch_size),
        "seed": int(seed),
        "b_dec_init": b_dec_init,
        "normalize": bool(normalize),
        "dead_rows": dead_rows,
        "lr_warmup": warmup,
        "lr_decay": decay,
    }


def train_saes(
    acts,
    specs: list[SAESpec],
    *,
    out,
    steps: int = 1024,
    batch_size: int = 1024,
    seed: int = 0,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    checkpoint_every: int | None = None,
    b_dec_init: str = "geometric_median",
    normalize: bool = True,
    dead_rows: int | None = None,
    lr_warmup: float = 0.05,
    lr_decay: float = 0.2,
    log_every: int = 32,
    key: str | None = None,
    stop_after: int | None = None,
    single: bool = False,
    stack: bool | None = None,
) -> list[Path]:
    """Train every SAE in ``specs`` on ``acts`` in one pass over the data; returns their directories.

    ``out/NAME`` holds each SAE (``out`` itself when ``single``); ``out/checkpoint.pt``
    the training state.  ``stop_after`` ends the run after that step with a checkpoint
    (as an interruption would; for tests).  ``stack``: train SAEs that can share a module
    as its stacked members (batched products; the default on CUDA, where they pay off) or
    each as its own module (the default on the CPU, where stacking measured no faster:
    the batched tensors outgrow the caches); either way every step reads the data once.
    A run resumes with the ``stack`` it started with.

    Refused in one line: zero-variance activations, a non-finite or absurd learning rate
    or hyper-parameter, an ``out`` holding anything but an SAE run
    (:func:`untwine.sae.runs.check_out_folder`), an ``out`` another process is writing
    (a lock held for the whole run), resuming on other activations (the checkpoint's data
    fingerprint), and a run that diverges (a non-finite loss or weight, or an error
    :data:`DIVERGED` times the inputs' mean squared norm): no weights are written then.
    """
    if not specs:
        raise UntwineError("no SAE to train")
    check_run_options(steps, batch_size, checkpoint_every, log_every, seed, lr_warmup, lr_decay, b_dec_init)
    if resume and overwrite:
        raise UntwineError("resume and overwrite contradict each other; choose one")
    source: ActivationSource = open_activations(acts, key)
    reuse_freed_memory()
    if source.rows < batch_size:
        raise UntwineError(f"{source.name}: {source.rows} rows are fewer than one batch ({batch_size})")
    dev = resolve_device(device)
    labels = [s.label() for s in specs]
    if len(set(labels)) != len(labels):
        raise UntwineError("two SAEs in the sweep have the same name; give them distinct names")
    _group_specs(specs, source.dim)  # every spec's values checked before anything is written
    out = Path(out)
    check_out_folder(out)
    dirs = [out] if single else [out / lab for lab in labels]
    if holds_run(out, dirs) and not resume and not overwrite:
        raise UntwineError(f"{out} already holds an SAE run; pass --resume to continue it or --overwrite to replace it")
    title = labels[0] if len(specs) == 1 else f"{len(specs)} SAEs"
    with Phases(progress, prefix=f"sae {title}: ") as phases:
        with phases.phase("reading a sample and fingerprinting the activations"):
            sample = torch.from_numpy(sample_rows(source, 16384, seed)).double()
            mean_sq = check_spread(sample, source)
            data = fingerprint(source)
        with exclusive_lock(out, what="an SAE training run writes there"):
            tidy(out, dirs)
            return _train_locked(
                source, specs, labels, dirs, out, data, sample, mean_sq, dev, steps=steps, batch_size=batch_size,
                seed=seed, resume=resume, overwrite=overwrite, progress=progress, checkpoint_every=checkpoint_every,
                b_dec_init=b_dec_init, normalize=normalize, dead_rows=dead_rows, lr_warmup=lr_warmup,
                lr_decay=lr_decay, log_every=log_every, stop_after=stop_after, single=single, stack=stack,
                phases=phases, title=title,
            )


def _train_locked(source, specs, labels, dirs, out, data, sample, mean_sq, dev, *, steps, batch_size, seed, resume,
                  overwrite, progress, checkpoint_every, b_dec_init, normalize, dead_rows, lr_warmup, lr_decay, log_every,
                  stop_after, single, stack, phases, title) -> list[Path]:
    d_in = source.dim
    ckpt_path = out / CHECKPOINT
    state = load_checkpoint(ckpt_path, data) if resume and ckpt_path.is_file() else None
    saved = None if state is None else json.loads(state["config"])
    if saved is not None:
        saved.setdefault("stack", True)  # runs from before the choice were stacked
    if stack is None:
        stack = saved["stack"] if saved is not None else dev.type == "cuda"
    groups = _group_specs(specs, d_in, stack)
    if dead_rows is None:
        dead_rows = int(min(10_000_000, max(batch_size, steps * batch_size // 16)))
    config = _run_config(specs, d_in, batch_size, seed, b_dec_init, normalize, dead_rows, lr_warmup, lr_decay, stack)

    # -- build modules (seeded), normalisation and b_dec from a sample ----------------------
    gen = torch.Generator().manual_seed(int(seed))
    for g in groups:
        cls = get_architecture(g.arch)
        members = [dict(specs[i].hparams) for i in g.specs]
        g.module = cls(d_in, g.latents, members, generator=gen)
    start = 0
    log: list[dict[str, Any]] = []
    if saved is not None:
        if saved != json.loads(json.dumps(config, sort_keys=True)):
            diff = sorted(k for k in config if saved.get(k) != json.loads(json.dumps(config[k])))
            raise UntwineError(f"{out} holds a different run ({', '.join(diff) or 'config'} differ); use --overwrite to replace it")
        try:
            for g, sd in zip(groups, state["modules"], strict=True):
                g.module.load_state_dict(sd)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise UntwineError(f"{ckpt_path}: does not fit this run ({str(exc).splitlines()[0]})") from None
        start = int(state["step"])
        log = json.loads(state["log"])
        if start > steps:
            raise UntwineError(f"{out} is already at step {start}, beyond the requested {steps} steps")
    else:
        if overwrite:  # only now that the inputs are known to be good
            clear_run(out)
        scale = math.sqrt(d_in) / float(sample.norm(dim=-1).mean().clamp_min(1e-12)) if normalize else 1.0
        xs = sample * scale
        with phases.phase(f"initial b_dec ({b_dec_init.replace('_', ' ')} of the sample)"):
            b0 = {"geometric_median": lambda: geometric_median(xs), "mean": lambda: xs.mean(0),
                  "zeros": lambda: torch.zeros(d_in)}[b_dec_init]()
        for g in groups:
            with torch.no_grad():
                g.module.input_scale.fill_(scale)
                g.module.b_dec.copy_(b0.float().expand_as(g.module.b_dec))
    for g in groups:
        g.module.to(dev).train()
        g.opt = _adam(g.module, g.lr)
    if state is not None:
        try:  # e.g. a checkpoint of an older untwine whose architecture had other parameter groups
            for g, osd in zip(groups, state["optims"], strict=True):
                g.opt.load_state_dict(osd)
        except (ValueError, KeyError) as exc:
            raise UntwineError(f"{ckpt_path}: its optimiser state does not fit this run ({str(exc).splitlines()[0]})") from None

    ckpt_every = checkpoint_every or max(1, min(steps, 1000, max(100, steps // 4)))
    scale_t = groups[0].module.input_scale
    limit = DIVERGED * mean_sq * float(scale_t) ** 2

    def checkpoint(at: int) -> None:
        check_diverged(at, groups, log[-1] if log else None, limit, specs)
        save_checkpoint(ckpt_path, at, config, [g.module for g in groups], [g.opt for g in groups], log, data)

    bar = StepProgress(phases, steps, start, f"sae {title}")
    batches = iter_batches(source, batch_size, seed=seed, skip_batches=start)
    t0 = time.perf_counter()
    step = start
    end = steps if stop_after is None else min(steps, int(stop_after))
    try:
        with _InterruptGuard() as guard:
            while step < end:
                x = torch.from_numpy(next(batches)).to(dev, non_blocking=True)
                xn = x * scale_t
                frac = step / steps
                mult = lr_factor(step, steps, lr_warmup, lr_decay)
                row = {}
                for g in groups:
                    for pg in g.opt.param_groups:
                        pg["lr"] = g.lr * mult * pg["lr_scale"]
                    terms, codes = g.module.gradients(xn, progress=frac, dead_rows=dead_rows)
                    g.module.update_state(codes, xn.shape[0])
                    g.module.remove_parallel_grad()
                    g.opt.step()
                    g.module.renorm_decoder()
                    row[id(g)] = terms
                step += 1
                if step % log_every == 0 or step == end or step == start + 1:
                    log.append(_log_row(step, groups, row, specs, dead_rows))
                    check_diverged(step, [], log[-1], limit, specs)
                    bar.update(step, terms_text(log[-1]["members"][0]) if len(specs) == 1 else "")
                if step % ckpt_every == 0 and step < steps:
                    checkpoint(step)
                if guard.hit:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        checkpoint(step)
        print(f"interrupted at step {step}; checkpoint written, continue with --resume", file=sys.stderr)
        raise
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    checkpoint(step)
    if step < steps:
        return []
    with phases.phase(f"writing {len(dirs)} SAE{'s' if len(dirs) > 1 else ''}"):
        _write_saes(groups, dirs, labels, log, steps, batch_size, seed, data, seconds, step - start, len(specs))
    if not single:
        write_json(out / SWEEP, {"saes": [{"name": labels[i], "dir": str(dirs[i])} for i in range(len(specs))]})
    return dirs


def _write_saes(groups, dirs, labels, log, steps, batch_size, seed, data, seconds, session_steps, trained_with) -> None:
    for g in groups:
        g.module.eval()
        for m, i in enumerate(g.specs):
            d = dirs[i]
            save_sae(d, g.module, m, metadata={"untwine_run": labels[i]})
            write_json(
                d / TRAINING,
                {
                    "steps": steps,
                    "batch_size": batch_size,
                    "lr": g.lr,
                    "seed": seed,
                    "data": data,
                    "seconds_this_session": seconds,
                    "rows_per_second_this_session": session_steps * batch_size / max(seconds, 1e-9),
                    "trained_with": trained_with,
                    "log": [{"step": r["step"], **r["members"][i]} for r in log],
                },
            )


def _log_row(step, groups, row, specs, dead_rows) -> dict[str, Any]:
    members: dict[int, dict[str, float]] = {}
    for g in groups:
        terms = {k: v.detach().cpu().tolist() for k, v in row[id(g)].items()}
        dead = (g.module.rows_since_fired >= dead_rows).float().mean(-1).cpu().tolist()
        for m, i in enumerate(g.specs):
            members[i] = {k: float(v[m]) for k, v in terms.items()} | {"dead": float(dead[m])}
    return {"step": step, "members": [members[i] for i in range(len(specs))]}


def train_sae(
    acts,
    *,
    arch: str,
    latents: int,
    out,
    k: int | None = None,
    steps: int = 1024,
    batch_size: int = 1024,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    hparams: dict[str, Any] | None = None,
    **options,
) -> Path:
    """Train one SAE on ``acts`` (path or array) and write it to ``out`` in SAELens's layout.

    ``arch`` is one of :data:`untwine.sae.ARCHITECTURES`; ``k`` the number of active
    latents where the architecture has one; ``hparams`` the fields of the architecture's
    ``Params`` dataclass (``l1_coefficient``, ``l0_coefficient``, ``bandwidth``,
    ``residual_threshold``, ``afa_coefficient`` ...).  Returns ``out``.
    """
    hp = dict(hparams or {})
    if k is not None:
        if hp.get("k", k) != k:
            raise UntwineError(f"k is given twice (--k {k} and --set k={hp['k']}); give it once")
        hp["k"] = k
    dirs = train_saes(
        acts, [SAESpec(arch, latents, hp, lr)], out=out, steps=steps, batch_size=batch_size, seed=seed,
        device=device, resume=resume, overwrite=overwrite, progress=progress, single=True, **options,
    )
    return dirs[0] if dirs else Path(out)
