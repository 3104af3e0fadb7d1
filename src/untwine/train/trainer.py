"""The training loop behind ``untwine train`` and :func:`untwine.train`.

The loop is model-agnostic (see :mod:`untwine.models.base`): it draws batch
``i`` from the dataset with a generator seeded from ``(seed, i)`` (so the data
stream resumes by step without any saved state), calls
``model.training_step(x, i, optimizers)`` (supervised models, ``model.supervised``, also
get ``factors=``, the batch's ``[n, K]`` class indices), logs the returned loss terms and
writes an atomic checkpoint every ``checkpoint_every`` steps and at the end.

Reproducibility: the model is built after ``torch.manual_seed(seed)``; each
checkpoint stores the torch/numpy RNG states, the optimizer states and the
logger's running averages, so resuming from step ``k`` continues exactly as the
uninterrupted run would (bitwise on CPU).

Interruption: SIGINT (Ctrl-C) and SIGTERM are caught between steps, a
checkpoint of the last completed step is written, and ``KeyboardInterrupt`` is
raised.  A second Ctrl-C interrupts at once (the last checkpoint stays valid).
A ``kill -9`` loses at most the steps since the last checkpoint.
"""

from __future__ import annotations

import math
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from untwine.errors import UntwineError
from untwine.files import cannot_write, remove_stray_temporaries, write_json
from untwine.models.common import RESERVED
from untwine.progress import Phases, StepProgress, terms_text
from untwine.train.checkpoint import (
    CHECKPOINT_DIR,
    capture_rng_state,
    latest_checkpoint,
    load_optimizers,
    load_weights,
    restore_rng_state,
    save_checkpoint,
)
from untwine.train.config import RunConfig, diff_identity, write_config
from untwine.train.log import LOG_FILE, CsvLogger
from untwine.train.run import (
    CONFIG_FILE,
    RUN_FILES,
    RUN_MARKER,
    Run,
    build_model,
    check_dataset,
    dataset_info,
    is_run_dir,
    open_run,
    resolve_device,
)


#: keys of model.hparams that come from the dataset, not from the user
DATA_KEYS = RESERVED


# -- data stream ------------------------------------------------------------------
def batch_rng(seed: int, step: int) -> np.random.Generator:
    """The generator that draws batch ``step`` of a run with ``seed`` (as :mod:`untwine.data.torch_data`)."""
    return np.random.default_rng([int(seed), int(step)])


def draw_labelled_batch(dataset, seed: int, step: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``step`` of the training stream with its factors: ``(x, factors [n, K] int64)`` from
    ``dataset.sample(batch_size, batch_rng(seed, step))``.

    The same batch :class:`untwine.data.torch_data.GroundTruthBatches` yields at ``step``.
    """
    f, x = dataset.sample(batch_size, batch_rng(seed, step))
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    return x.float(), torch.as_tensor(np.asarray(f, dtype=np.int64))


def draw_batch(dataset, seed: int, step: int, batch_size: int) -> torch.Tensor:
    """Batch ``step`` of the training stream (the observations of :func:`draw_labelled_batch`)."""
    return draw_labelled_batch(dataset, seed, step, batch_size)[0]


class BatchStream:
    """Batches ``start, start+1, ...`` rendered one step ahead on a background thread: ``x``, or
    ``(x, factors)`` when ``labelled``."""

    def __init__(self, dataset, seed: int, batch_size: int, start: int, stop: int, prefetch: bool = True,
                 labelled: bool = False) -> None:
        self.dataset, self.seed, self.batch_size = dataset, seed, batch_size
        self.next, self.stop = start, stop
        self.prefetch = prefetch
        self._draw = draw_labelled_batch if labelled else draw_batch
        self._pending: tuple[int, threading.Thread, list] | None = None

    def _launch(self, step: int) -> None:
        box: list = []

        def work():
            try:
                box.append(self._draw(self.dataset, self.seed, step, self.batch_size))
            except BaseException as exc:  # re-raised in the main thread
                box.append(exc)

        t = threading.Thread(target=work, daemon=True)
        t.start()
        self._pending = (step, t, box)

    def get(self, step: int) -> torch.Tensor:
        if not self.prefetch:
            return self._draw(self.dataset, self.seed, step, self.batch_size)
        if self._pending is None or self._pending[0] != step:
            self._launch(step)
        _, t, box = self._pending
        t.join()
        self._pending = None
        if step + 1 < self.stop:
            self._launch(step + 1)
        out = box[0]
        if isinstance(out, BaseException):
            raise out
        return out


# -- interruption -------------------------------------------------------------------
class _StopFlag:
    def __init__(self) -> None:
        self.signal: int | None = None

    def handler(self, signum, frame):
        if self.signal is not None:  # second signal: stop now
            raise KeyboardInterrupt
        self.signal = signum


@contextmanager
def _catch_signals(flag: _StopFlag):
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, flag.handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _say(msg: str, enabled: bool) -> None:
    if enabled:
        print(msg, file=sys.stderr, flush=True)


# -- run directory preparation --------------------------------------------------------
def _clear_run_dir(path: Path) -> None:
    for name in RUN_FILES:
        p = path / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _prepare_dir(out: Path, cfg: RunConfig, *, resume: bool, overwrite: bool) -> tuple[bool, RunConfig | None, bool]:
    """Decide between a fresh start and a resume, without touching anything yet.

    Returns ``(resuming, saved_config, clear)``; ``clear`` means the run files in
    ``out`` are to be deleted before the fresh start (``--overwrite``, or leftovers of
    an attempt that never wrote its marker).
    """
    if out.exists() and not out.is_dir():
        raise UntwineError(f"--out {out} exists and is not a directory")
    if out.is_dir() and is_run_dir(out):
        if overwrite:
            return False, None, True
        saved = open_run(out).config
        if not resume:
            raise UntwineError(
                f"{out} already holds a run ({saved.model} on {saved.dataset}); "
                "pass --resume to continue it or --overwrite to replace it"
            )
        return True, saved, False
    if out.is_dir() and any(out.iterdir()):
        leftovers = [p.name for p in out.iterdir()]
        if not all(n in RUN_FILES for n in leftovers):
            raise UntwineError(f"--out {out} is a non-empty directory that holds no untwine run; choose another --out")
        if not overwrite and not resume:
            raise UntwineError(f"{out} holds parts of an unfinished run; pass --overwrite to replace it")
        return False, None, True
    return False, None, False


def _with_new_defaults(saved: RunConfig) -> RunConfig:
    """``saved`` with the hyper-parameters a newer untwine added (absent from its config) at their
    defaults: a run saved before a hyper-parameter existed was trained with that default."""
    from untwine import models

    defaults = models.model_hparams(saved.model)
    missing = {k: v for k, v in defaults.items() if k not in saved.hparams and v is not None}
    if not missing:
        return saved
    filled = RunConfig.from_dict(saved.to_dict(), source="saved config")
    filled.hparams = {**missing, **saved.hparams}
    return filled


def _load_dataset(name: str):
    from untwine import data

    dataset = data.load(name)
    if getattr(dataset, "modality", None) == "text":
        raise UntwineError(
            f"dataset {dataset.name} holds sentences, not arrays a model can train on; turn it into "
            f"activations with `untwine lm activations --corpus {dataset.name}` and train an SAE on them"
        )
    return dataset


def default_out(cfg: RunConfig) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(str(cfg.dataset)).stem) or "data"
    return Path("runs") / f"{cfg.model}-{safe}-{time.strftime('%Y%m%d-%H%M%S')}"


# -- the loop -------------------------------------------------------------------------------
def run_training(cfg: RunConfig, **kwargs) -> Run:
    """Train ``cfg`` into run directory ``out``; returns the :class:`Run` (with ``.model`` set).

    ``dataset`` may be a :class:`~untwine.data.GroundTruthDataset` to use instead
    of loading ``cfg.dataset`` by name (then ``cfg.dataset`` defaults to its name).
    ``callback(step, terms)`` is called after every step.  Training seeds torch's and
    numpy's global generators; the caller's generator states are restored on return
    (and on any error).
    """
    caller_rng = capture_rng_state()
    try:
        return _run_training(cfg, **kwargs)
    finally:
        restore_rng_state(caller_rng)


def _run_training(
    cfg: RunConfig,
    *,
    out=None,
    dataset=None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = False,
    verbose: bool = False,
    callback: Callable[[int, dict[str, float]], None] | None = None,
) -> Run:
    from untwine._memory import reuse_freed_memory

    if dataset is not None and not cfg.dataset:
        cfg.dataset = str(getattr(dataset, "name", "dataset"))
    cfg.validate()
    reuse_freed_memory()  # the same activation buffers step after step: no page-fault storm
    if cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UntwineError("tensorboard=true needs the tensorboard package (pip install 'untwine[tensorboard]')") from None
    out = Path(out) if out is not None else default_out(cfg)
    resuming, saved, clear = _prepare_dir(out, cfg, resume=resume, overwrite=overwrite)
    if resume and not resuming:
        _say(f"new run in {out} (nothing to resume there yet)", True)

    if dataset is None:
        dataset = _load_dataset(cfg.dataset)
    info = dataset_info(dataset)
    device = resolve_device(cfg.device)

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed % (2**32))
    model = build_model(cfg, info)
    resolved = dict(getattr(model, "hparams", None) or cfg.hparams)
    cfg.hparams = {k: v for k, v in resolved.items() if k not in DATA_KEYS}
    if "num_latents" in cfg.hparams and cfg.num_latents is not None:
        cfg.num_latents = int(cfg.hparams["num_latents"])

    ckpt = None
    if resuming:
        assert saved is not None
        diffs = diff_identity(_with_new_defaults(saved), cfg)
        if diffs:
            raise UntwineError(f"{out} holds a different run; differing settings: {'; '.join(diffs)} (use --overwrite or another --out)")
        check_dataset(open_run(out).info, dataset, out)
        ckpt = latest_checkpoint(out)
        if ckpt is not None and ckpt.state.get("config_hash") not in (None, cfg.identity_hash()):
            raise UntwineError(f"{out}: checkpoint was written by a different config; use --overwrite or another --out")
    if clear:  # only now that the config, dataset and model are known to be good
        _clear_run_dir(out)
    if out.is_dir():  # temporary files of writes a kill interrupted
        remove_stray_temporaries(out)
        remove_stray_temporaries(out / CHECKPOINT_DIR)

    model.to(device)
    optimizers = model.make_optimizers()
    logger = CsvLogger(out / LOG_FILE, cfg.log_every)
    start = 0
    if ckpt is not None:
        if ckpt.step > cfg.steps:
            raise UntwineError(f"{out} is already at step {ckpt.step}, beyond the requested {cfg.steps} steps")
        load_weights(model, ckpt, device=device)
        load_optimizers(optimizers, ckpt, device=device)
        restore_rng_state(ckpt.state.get("rng", {}))
        logger.restore(ckpt.state.get("logger"), ckpt.step)
        start = ckpt.step
        _say(f"resuming {out} from step {start}", verbose)
    else:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise cannot_write(out, exc, "create the run directory") from None
        logger.restore(None, 0)  # drops any rows left by an attempt that never checkpointed
        logger.start_fresh()
    # config and marker are (re)written on every start: steps/device may have changed
    write_config(cfg, out / CONFIG_FILE)
    from untwine import __version__

    write_json(out / RUN_MARKER, {"untwine_version": __version__, "config_hash": cfg.identity_hash(), "data": info}, indent=1)
    if cfg.tensorboard:
        logger.attach_tensorboard(SummaryWriter(str(out / "tensorboard"), purge_step=start + 1))

    def checkpoint(step: int):
        state = {
            "config_hash": cfg.identity_hash(),
            "rng": capture_rng_state(),
            "logger": logger.state(),
            "data_stream": {"seed": cfg.seed, "next_batch": step, "batch_size": cfg.batch_size},
        }
        save_checkpoint(out, step, model, optimizers, state, keep=cfg.keep_checkpoints)

    run = Run(out, cfg, info)
    supervised = bool(getattr(model, "supervised", False))
    stream = BatchStream(dataset, cfg.seed, cfg.batch_size, start, cfg.steps, labelled=supervised)
    flag = _StopFlag()
    title = f"{cfg.model} on {info['name']}"
    _say(
        f"training {cfg.model} on {cfg.dataset}: steps {start}->{cfg.steps}, batch {cfg.batch_size}, "
        f"device {device}, seed {cfg.seed} -> {out}",
        verbose,
    )
    phases = Phases(progress, prefix=f"{title}: ")
    bar = StepProgress(phases, cfg.steps, start, title)
    step = start
    last_saved = start if ckpt is not None else -1
    t0 = time.perf_counter()
    model.train()
    try:
        with _catch_signals(flag):
            while step < cfg.steps:
                if supervised:
                    x, f = stream.get(step)
                    x = x.to(device, non_blocking=True)
                    terms = model.training_step(x, step, optimizers, factors=f.to(device))
                else:
                    x = stream.get(step).to(device, non_blocking=True)
                    terms = model.training_step(x, step, optimizers)
                terms = {k: float(v) for k, v in terms.items()}
                loss = terms.get("loss", 0.0)
                if not math.isfinite(loss):
                    raise UntwineError(
                        f"loss became {loss} at step {step}; the last good checkpoint is step {max(last_saved, 0)} "
                        "(try a lower learning rate)"
                    )
                step += 1
                row = logger.update(step, terms)
                bar.update(step, None if row is None else terms_text(row))
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    checkpoint(step)
                    last_saved = step
                if callback is not None:
                    callback(step, terms)
                if flag.signal is not None:
                    if last_saved != step:
                        checkpoint(step)
                        last_saved = step
                    raise KeyboardInterrupt
            if last_saved != step:  # steps == start: nothing trained, still leave a checkpoint
                checkpoint(step)
                last_saved = step
    except KeyboardInterrupt:
        bar.close()
        phases.close()
        logger.close()
        where = f"checkpoint at step {last_saved}" if last_saved >= 0 else "no checkpoint written yet"
        _say(f"interrupted; {where} in {out} (continue with --resume --out {out})", True)
        raise
    finally:
        bar.close()
        phases.close()
        logger.close()
    elapsed = time.perf_counter() - t0
    done = step - start
    if done:
        _say(f"trained {done} steps in {elapsed:.1f}s ({done / max(elapsed, 1e-9):.1f} steps/s); run in {out}", verbose)
    model.eval()
    run.model = model
    run.train_seconds = elapsed
    return run
