"""Directions in a generator's latent space, found by several methods and scored against ground truth.

``find_directions(run_dir, method, num, out)`` (``untwine directions``) runs one method, or
all of them, on a trained run's generator (its decoder, or a GAN's generator), scores every
set of directions with the dataset's oracle (:mod:`untwine.directions.oracle`,
:mod:`untwine.directions.scoring`) and writes ``directions.npy``, ``scores.json`` and a
traversal picture per method.  Methods (one module each, registered in
:data:`untwine.directions.base.METHODS`): ``sefa``, ``pca`` (GANSpace), ``voynov``,
``householder``, ``gradctrl``, ``potential_flow`` and the baselines ``axes`` and ``random``.
"""

from untwine.directions.base import METHODS, Found, Generator, Method, first_layer, register
from untwine.directions.methods import get_method, learnt_methods  # imports every built-in method module
from untwine.directions.oracle import Oracle, get_oracle, train_oracle
from untwine.directions.run import find_directions, score_directions
from untwine.directions.scoring import effect_matrix, score_effects

__all__ = [
           "METHODS",
           "Found",
           "Generator",
           "Method",
           "Oracle",
           "effect_matrix",
           "find_directions",
           "first_layer",
           "get_method",
           "get_oracle",
           "learnt_methods",
           "register",
           "score_directions",
           "score_effects",
           "train_oracle",
]
