"""What a score means on this data: the same metrics for a random encoder and for the factors themselves.

A MIG of 0.2 is good on one dataset and poor on another.  Beside a run's scores,
``untwine evaluate`` therefore reports, on the *same* train/test samples and with the
same settings:

* ``random_encoder``: the run's model at initialisation (built from its config with
  ``torch.manual_seed(0)``, never trained), encoded through the same
  :class:`~untwine.models.encoder.ModelEncoder` -- what the architecture gives for free;
* ``factors``: the factors themselves as the codes (one latent per factor, values as
  floats) -- what a perfectly disentangled, perfectly informative code scores.

Only the array metrics of :data:`REFERENCE_METRICS` are computed (the interventional
scores would need an encoder for the factors).  The result depends only on the dataset,
the model's configuration (for the random encoder) and the sampling and metric settings,
so it is computed once and cached as JSON under :func:`untwine.files.cache_dir`
(``reference``) for every run that shares them (all the seeds of a study configuration).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch

from untwine.errors import UntwineError
from untwine.files import cache_dir, read_json, write_json

#: array metrics computed for the references (the headline of the report)
REFERENCE_METRICS = ("mig", "dci", "modularity", "infomec")
#: the keys the report's headline shows, in order (those of REFERENCE_METRICS plus the interventional scores)
HEADLINE_KEYS = (
    "mig", "dci_disentanglement", "dci_completeness", "dci_informativeness_test", "modularity",
    "infom", "infoe", "infoc", "beta_vae_score", "factor_vae_score",
)
VERSION = 2  # 2: test rows held out from the train rows (GroundTruthDataset.evaluation_rows)


def _key(run, dataset, cfg) -> str:
    from untwine.train.run import dataset_info

    ident = {
        "version": VERSION,
        "data": dataset_info(dataset),
        "model": run.config.model,
        "hparams": run.config.hparams,
        "num_latents": run.config.num_latents,
        "sampling": {k: getattr(cfg, k) for k in ("num_train", "num_test", "seed", "representation", "dci_estimator")},
    }
    blob = json.dumps(ident, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def reference_scores(run, dataset, cfg, f_train, f_test, i_train, i_test, *, test_dataset=None) -> dict[str, Any]:
    """``{"random_encoder": {...}, "factors": {...}, "metrics": [...], "cached": bool}`` (see the module docstring);
    ``i_test`` indexes ``test_dataset`` (default ``dataset``: see ``GroundTruthDataset.evaluation_rows``)."""
    from untwine.metrics import registry
    from untwine.metrics.suite import evaluate_arrays
    from untwine.models.encoder import ModelEncoder
    from untwine.train.run import build_model

    path = cache_dir("reference") / f"{_key(run, dataset, cfg)}.json"
    if path.is_file():
        try:
            return dict(read_json(path), cached=True)
        except ValueError:
            pass  # a damaged cache entry is computed again
    metrics = [m for m in REFERENCE_METRICS if registry.METRICS[m].min_factors <= dataset.num_factors]
    settings = dict(metrics=metrics, seed=int(cfg.seed), dci_estimator=cfg.dci_estimator)
    state = torch.get_rng_state()
    try:
        torch.manual_seed(0)
        untrained = build_model(run.config, run.info)
    finally:
        torch.set_rng_state(state)
    enc = ModelEncoder(untrained, cfg.representation, seed=int(cfg.seed))
    c_tr = enc.encode_indices(dataset, i_train).codes
    c_te = enc.encode_indices(dataset if test_dataset is None else test_dataset, i_test).codes

    def scores(codes_train, codes_test) -> dict[str, Any]:
        try:
            return evaluate_arrays(codes_train, f_train, codes_test, f_test, **settings)
        except UntwineError as exc:  # e.g. one factor gives a one-column code, too narrow for MIG
            return {"error": str(exc)}

    out = {
        "random_encoder": scores(c_tr, c_te),
        "factors": scores(np.asarray(f_train, np.float64), np.asarray(f_test, np.float64)),
        "metrics": metrics,
    }
    write_json(path, out)
    return dict(out, cached=False)
