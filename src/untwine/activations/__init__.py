"""Activations folders: one layout, one writer, one reader.

* :mod:`untwine.activations.layout`: :class:`ActivationFolder`, the folder's layout (every
  file name: ``activations.json``, ``layer_L/``, ``rows.npy``, ``factors.npy``,
  ``sentences.txt``; a layer's ``manifest.json`` and shards) and its row tables;
* :mod:`untwine.activations.shards`: a layer folder's shards and manifest (size and SHA-256
  of every shard), :class:`ShardWriter` and :func:`read_layer`;
* :mod:`untwine.activations.writer`: :func:`write_layers`, any model's activations written
  as shards, resumable (``untwine lm activations`` uses it);
* :mod:`untwine.activations.hooks`: :class:`ModelHooks`, the layers of any ``torch.nn.Module``
  (module paths, and ``codes``: the evaluation's code) and their pooled activations;
* :mod:`untwine.activations.models`: :func:`write_model_activations` and :func:`list_layers`,
  any model on any ground-truth dataset written as a folder (``untwine activations``);
* :mod:`untwine.activations.reader`: :func:`open_activations` (streamed) and
  :func:`read_activations` (in memory), the one reader of every ``ACTS`` argument (layer
  folders, shard directories, ``.npy``, ``.safetensors``, ``.npz``, ``.csv``, ``.tsv``);
  a tensor inside a file is named ``FILE:NAME`` or with ``--key NAME``.

Submodules are imported on use (``import untwine.activations`` imports no torch).
"""

from __future__ import annotations

_LAZY = {
    "ActivationFolder": "untwine.activations.layout",
    "ShardWriter": "untwine.activations.shards",
    "read_layer": "untwine.activations.shards",
    "write_layers": "untwine.activations.writer",
    "ModelHooks": "untwine.activations.hooks",
    "list_layers": "untwine.activations.models",
    "write_model_activations": "untwine.activations.models",
    "ActivationSource": "untwine.activations.reader",
    "open_activations": "untwine.activations.reader",
    "read_activations": "untwine.activations.reader",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
