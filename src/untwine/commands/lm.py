"""``untwine lm``: activations of a local language model on a corpus.

    untwine lm activations --model minilm|PATH --layers 0,3,6 --corpus concepts|FILE
                           --pool mean|last|tokens [--max-rows N] [--chunk N] --out DIR

Writes ``DIR/layer_L/`` (safetensors shards + manifest.json) for each layer,
``DIR/factors.npy`` (the corpus's factors of each activation row), ``DIR/rows.npy``,
``DIR/sentences.txt`` and ``DIR/activations.json``.  Running it again resumes where it
stopped (after the last complete shard of ``--chunk`` sentences; shards are checked against
the manifest first, and a killed run's temporary files are deleted).  ``--model minilm`` is
all-MiniLM-L6-v2 from the ``[lm]`` extra; PATH is any local
Hugging Face model folder.  Nothing is downloaded.  A corpus FILE is ``.txt`` (one
sentence per line) or ``.tsv`` / ``.csv`` with a ``text`` column and integer factor columns.
"""

from __future__ import annotations

import argparse

from untwine.commands import help_text

from untwine.errors import UntwineError


def _layers(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer numbers, got {text!r}") from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "lm",
        help="language-model activations on a corpus with known factors",
        description=help_text(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="lm_action", metavar="ACTION")
    a = sub.add_parser("activations", help="write pooled hidden states of chosen layers as shards")
    a.add_argument("--model", default="minilm", help="minilm (bundled all-MiniLM-L6-v2) or a local model folder")
    a.add_argument("--layers", type=_layers, default=[0, 3, 6], help="comma-separated hidden-state layers, 0 = embeddings (default 0,3,6)")
    a.add_argument("--corpus", default="concepts", help="concepts (built-in) or a .txt/.tsv/.csv file (default concepts)")
    a.add_argument("--pool", choices=("mean", "last", "tokens"), default="mean", help="mean, last or tokens (default mean)")
    a.add_argument("--max-rows", type=int, metavar="N", help="at most N sentences (a seeded subset of concepts)")
    a.add_argument("--out", required=True, metavar="DIR", help="output directory (resumed when it holds the same run)")
    a.add_argument("--batch-size", type=int, default=64, help="sentences per forward pass (default 64)")
    a.add_argument("--max-length", type=int, default=128, help="tokens per sentence before truncation (default 128)")
    a.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda (default auto)")
    a.add_argument("--seed", type=int, default=0, help="seed of the --max-rows subset of concepts (default 0)")
    a.add_argument("--chunk", type=int, default=512, metavar="N",
                   help="sentences per shard: the unit of resuming after an interruption (default 512)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    if getattr(args, "lm_action", None) != "activations":
        raise UntwineError("give an action: untwine lm activations --out DIR (see untwine lm --help)")
    import sys

    from untwine.lm.activations import write_activations

    s = write_activations(
        args.out, model=args.model, layers=args.layers, corpus=args.corpus, pool=args.pool,
        max_rows=args.max_rows, batch_size=args.batch_size, max_length=args.max_length,
        device=args.device, seed=args.seed, chunk=args.chunk, progress=sys.stderr.isatty(),
    )
    if s["resumed_sentences"]:
        print(f"resumed after {s['resumed_sentences']} of {s['sentences']} sentences")
    print(
        f"{s['model']}: {s['sentences']} sentences of {s['corpus']} -> {s['rows']} rows x {s['hidden_size']} "
        f"per layer ({s['pool']} pooling), layers {', '.join(map(str, s['layers']))}"
    )
    for layer in s["layers"]:
        print(f"  {args.out}/layer_{layer}")
    print(f"factors: {args.out}/factors.npy" if s["factors"] else "factors: none (the corpus has no factor columns)")
    print(f"total {s['seconds']:.1f}s")
    return 0
