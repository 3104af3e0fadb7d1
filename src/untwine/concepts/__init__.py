"""Scoring any activation array against known concepts (factors), one module each.

* :mod:`~untwine.concepts.reconstruction`: :func:`fvu`, the fraction of variance
  unexplained (the one definition);
* :mod:`~untwine.concepts.supervised_dictionary`: the supervised dictionary of Makelov et al.
  2024, the reference of a perfect concept dictionary;
* :mod:`~untwine.concepts.pca`: PCA codes;
* :mod:`~untwine.concepts.probing`: linear probes and k-sparse probing;
* :mod:`~untwine.concepts.edit`: the edit test;
* :mod:`~untwine.concepts.baselines`: every baseline side by side on the same rows;
* :mod:`~untwine.concepts.top_sentences`: the sentences that most activate each latent;
* :mod:`~untwine.concepts.sae_evaluation`: an SAE's codes beside the baselines
  (``untwine sae evaluate --factors``, ``DIR/evaluation.json``).

The activations come from any source :mod:`untwine.activations.reader` reads (an
``untwine lm activations`` layer, an SAE's inputs, a ``.npy``).  Submodules are imported on
use (``import untwine.concepts`` imports nothing else).
"""
