"""``untwine sae``: sparse autoencoders with ground truth.

    untwine sae train ACTS --arch topk --latents 512 --k 4 --steps 1024 --batch-size 1024 --out DIR
                      [--lr X] [--seed S] [--device auto] [--set key=value ...] [--checkpoint-every N] [--resume] [--overwrite]
    untwine sae sweep ACTS --arch topk,batchtopk --latents 256,512 --k 2,4,8 --out DIR [...]
    untwine sae encode DIR ACTS --out codes.npy
    untwine sae evaluate DIR ACTS [--features TRUE_DIRS.npy] [--true-codes C.npz] [--factors F.npy [--no-baselines]
                         [--suite-rows N]] [--json OUT] [--no-progress]
    untwine sae synthetic --features 256 --dim 64 --samples 100000 --out DIR [--active 4 ...]

ACTS is a ``.npy`` file (memory-mapped), a ``.safetensors`` file or a directory of shards.
DIR holds SAELens's layout (``cfg.json``, ``sae_weights.safetensors``), see
:mod:`untwine.sae.io`.  ``sweep`` trains every combination in one pass over the data.
"""

from __future__ import annotations

import argparse
import json

from untwine.errors import UntwineError


ACTS_HELP = ("activations: .npy (memory-mapped), .safetensors (FILE:NAME picks a tensor), a directory of shards, "
             "an untwine activations layer directory, or .npz / .csv / .tsv (read whole)")
DEVICE_HELP = "auto (default: CUDA when present), cpu, cuda"


class _Parser(argparse.ArgumentParser):
    """A parser whose help ends with the registered architectures and their typed
    hyper-parameters (read from :mod:`untwine.sae.registry` only when help is shown, so
    other commands do not import torch)."""

    def __init__(self, *args, list_architectures: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.list_architectures = list_architectures

    def format_help(self) -> str:
        text = super().format_help()
        if not self.list_architectures:
            return text
        from untwine.sae.registry import describe_architectures

        return f"{text}\n{describe_architectures()}\n"


class _PluginAction(argparse.Action):
    """``--plugin MODULE``: imported as soon as it is parsed (so a later ``--help`` lists its
    architectures); a failure is reported by :func:`_load_plugins` as one error line."""

    def __call__(self, parser, namespace, values, option_string=None):
        from untwine.errors import UntwineError
        from untwine.sae.registry import load_plugin

        try:
            load_plugin(values)
        except UntwineError:
            pass  # retried, and reported in one line, when the command runs
        setattr(namespace, self.dest, [*getattr(namespace, self.dest, []), values])


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sae",
        help="sparse autoencoders: train, sweep, encode, evaluate against ground truth, synthetic activations",
        description="Sparse autoencoders in SAELens's on-disk format (architectures: untwine sae train --help).",
    )
    sub = p.add_subparsers(dest="sae_command", metavar="SUBCOMMAND", parser_class=_Parser)

    def common_train(q):
        q.add_argument("acts", metavar="ACTS", help=ACTS_HELP)
        q.add_argument("--steps", type=int, default=1024, help="training steps (default 1024)")
        q.add_argument("--batch-size", type=int, default=1024, help="rows per step (default 1024)")
        q.add_argument("--out", required=True, metavar="DIR", help="output directory")
        q.add_argument("--lr", type=float, help="Adam learning rate (default: the architecture's, listed below)")
        q.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the batch order (default 0)")
        q.add_argument("--device", default="auto", help=DEVICE_HELP)
        q.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="architecture hyper-parameter (listed below), e.g. l1_coefficient=3 (repeatable)")
        q.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
        q.add_argument("--overwrite", action="store_true", help="replace an SAE run already in --out")
        q.add_argument("--checkpoint-every", type=int, metavar="N",
                       help="write the checkpoint every N steps (default: a quarter of the run, 100 to 1000 steps)")
        q.add_argument("--no-progress", action="store_true", help="no progress output")
        plugin(q)

    def plugin(q):
        q.add_argument("--plugin", action=_PluginAction, default=[], metavar="MODULE",
                       help="import MODULE (a module name or a .py file) first: the SAE architectures it registers "
                            "(untwine.sae.register) become usable, and listed by --help after it (repeatable)")

    t = sub.add_parser("train", help="train one SAE on activations", list_architectures=True)
    common_train(t)
    t.add_argument("--arch", required=True, help="architecture (listed below)")
    t.add_argument("--latents", type=int, required=True, help="number of latents (d_sae)")
    t.add_argument("--k", type=int, help="the hyper-parameter k, for architectures that have one (same as --set k=K)")
    t.set_defaults(func=run_train)

    s = sub.add_parser("sweep", help="train many SAEs (architectures x latents x k) together in one pass",
                       list_architectures=True)
    common_train(s)
    s.add_argument("--arch", required=True, help="comma list of architectures (listed below)")
    s.add_argument("--latents", required=True, help="comma list of widths")
    s.add_argument("--k", help="comma list of k (ignored by architectures without a k)")
    s.set_defaults(func=run_sweep)

    e = sub.add_parser("encode", help="encode activations with a trained SAE")
    e.add_argument("sae", metavar="DIR", help="SAE directory (untwine's or SAELens's)")
    e.add_argument("acts", metavar="ACTS", help=ACTS_HELP)
    e.add_argument("--out", required=True, metavar="CODES.npy", help="dense codes [N, d_sae] (float32 .npy)")
    e.add_argument("--device", default="auto", help=DEVICE_HELP)
    plugin(e)
    e.set_defaults(func=run_encode)

    v = sub.add_parser("evaluate", help="reconstruction, ground-truth and disentanglement metrics of an SAE")
    v.add_argument("sae", metavar="DIR", help="SAE directory (untwine's or SAELens's)")
    v.add_argument("acts", metavar="ACTS", help=ACTS_HELP + " (the rows the scores are computed on)")
    v.add_argument("--features", metavar="TRUE_DIRS.npy", help="true dictionary [F, d_in] (MMCS, recovered)")
    v.add_argument("--true-codes", metavar="CODES", help="true codes [N, F] (.npz sparse or .npy) for MCC and absorption")
    v.add_argument("--factors", metavar="F.npy", help="integer factors [N, K]: the suite, k-sparse probing and the edit test "
                   "on the codes beside the concept baselines; writes DIR/evaluation.json for untwine report DIR")
    v.add_argument("--baselines", action=argparse.BooleanOptionalAction, default=True,
                   help="with --factors: also score raw activations, PCA and the supervised dictionary on the same rows (default on)")
    v.add_argument("--metrics", default="all", help="the SAE's suite metrics with --factors (as untwine score; baselines get all)")
    v.add_argument("--suite-rows", type=int, default=6000, metavar="N",
                   help="with --factors: the suite and the DCI importance matrix of every code set run on a seeded "
                        "subsample of N rows (train and test in proportion) when there are more; 0: every row "
                        "(minutes on 100,000 rows of 512 latents). Probing, FVU and edit tests use every row (default 6000)")
    v.add_argument("--seed", type=int, default=0,
                   help="seed of the concept scores' train/test split, the suite's subsample and the metrics' "
                        "estimators (default 0)")
    v.add_argument("--device", default="auto", help=DEVICE_HELP)
    v.add_argument("--json", metavar="OUT", help="write the scores as one flat JSON object")
    v.add_argument("--no-progress", action="store_true", help="no progress output")
    plugin(v)
    v.set_defaults(func=run_evaluate)

    g = sub.add_parser("synthetic", help="write activations with a known dictionary and codes")
    g.add_argument("--features", type=int, default=256, help="true features F (default 256)")
    g.add_argument("--dim", type=int, default=64, help="activation dimension (default 64)")
    g.add_argument("--samples", type=int, default=100_000, help="rows (default 100000)")
    g.add_argument("--active", type=float, default=4.0, help="mean active features per row (default 4)")
    g.add_argument("--freq-power", type=float, default=0.5, help="power-law exponent of firing frequencies (default 0.5)")
    g.add_argument("--mag-std", type=float, default=0.25, help="std of magnitudes around 1 (default 0.25)")
    g.add_argument("--correlation", type=float, default=0.0, help="within-group firing correlation in [0, 1) (default 0)")
    g.add_argument("--hierarchy", type=int, default=0, help="number of parent features with children (default 0)")
    g.add_argument("--children", type=int, default=3, help="children per parent (default 3)")
    g.add_argument("--noise", type=float, default=0.0, help="Gaussian noise std (default 0)")
    g.add_argument("--seed", type=int, default=0, help="seed of the dictionary and the codes (default 0)")
    g.add_argument("--out", required=True, metavar="DIR",
                   help="writes acts.npy [N, dim], features.npy (the true dictionary [F, dim]), codes.npz (true codes "
                        "[N, F]), factors.npy ([N, 8]: whether each of the 8 most frequent features fires, as integer "
                        "factors for `sae evaluate --factors`) and synthetic.json")
    g.set_defaults(func=run_synthetic)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    return p


def _value(text: str):
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _sets(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, eq, val = item.partition("=")
        if not eq or not key:
            raise UntwineError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = _value(val.strip())
    return out


def _load_plugins(args) -> None:
    from untwine.sae.registry import load_plugin

    for source in args.plugin:
        load_plugin(source)


def _check_flags(args) -> None:
    _load_plugins(args)
    if args.resume and args.overwrite:
        raise UntwineError("--resume and --overwrite contradict each other; choose one")


def run_train(args) -> int:
    from untwine.sae.train import train_sae

    _check_flags(args)
    out = train_sae(
        args.acts, arch=args.arch, latents=args.latents, k=args.k, out=args.out, steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device, resume=args.resume,
        overwrite=args.overwrite, progress=not args.no_progress, hparams=_sets(args.set),
        checkpoint_every=args.checkpoint_every,
    )
    _print_trained([out])
    return 0


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UntwineError(f"--{what} expects a comma list of integers, got {text!r}") from None


def run_sweep(args) -> int:
    from untwine.sae.specs import sweep_specs
    from untwine.sae.train import train_saes

    _check_flags(args)
    specs = sweep_specs(
        [a.strip() for a in args.arch.split(",") if a.strip()], _ints(args.latents, "latents"),
        _ints(args.k, "k") if args.k else [None], _sets(args.set), args.lr,
    )
    dirs = train_saes(
        args.acts, specs, out=args.out, steps=args.steps, batch_size=args.batch_size, seed=args.seed,
        device=args.device, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress,
        checkpoint_every=args.checkpoint_every,
    )
    _print_trained(dirs)
    return 0


def _print_trained(dirs) -> None:
    from untwine.files import read_json
    from untwine.sae.train import TRAINING

    for d in dirs:
        info = read_json(d / TRAINING)
        last = info["log"][-1] if info["log"] else {}
        terms = "  ".join(f"{k} {v:.4g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in last.items() if k != "step")
        print(f"{d}: {info['steps']} steps, {info['rows_per_second_this_session']:.0f} rows/s  {terms}")


def run_encode(args) -> int:
    from untwine.sae.encode import encode_file

    _load_plugins(args)
    out = encode_file(args.sae, args.acts, args.out, device=args.device)
    print(f"wrote {out}")
    return 0


def run_evaluate(args) -> int:
    from pathlib import Path

    from untwine._checks import check_seed

    check_seed(args.seed)
    _load_plugins(args)
    from untwine.files import UNDEFINED_KEY, write_json
    from untwine.concepts.baselines import LABELS, code_set, suite_sample
    from untwine.concepts.sae_evaluation import EVALUATION, check_factors, concept_table, evaluate_concepts_paths
    from untwine.progress import Phases
    from untwine.sae.metrics import evaluate_paths, undefined_scores

    fac = None
    if args.factors is not None:  # bad factors are one error line before any work
        from untwine.activations.reader import open_activations
        from untwine.arrays import read_array

        suite_sample(3, 3, args.suite_rows)  # checks the value
        fac = read_array(args.factors)
        fac = check_factors(fac, open_activations(args.acts).rows)
    with Phases(not args.no_progress, prefix="sae evaluate: ") as phases:
        scores, notes = evaluate_paths(
            args.sae, args.acts, features=args.features, true_codes=args.true_codes,
            seed=args.seed, device=args.device, progress=phases,
        )
        concepts = None
        if fac is not None:
            concepts = evaluate_concepts_paths(args.sae, args.acts, fac, baselines=args.baselines, metrics=args.metrics,
                                               seed=args.seed, device=args.device, suite_rows=args.suite_rows,
                                               progress=phases)
    with code_set(LABELS["sae"]):
        undefined = undefined_scores({**(concepts["sae"] if concepts is not None else {}), **scores})
    for n in notes:
        print(n)
    print(f"reconstruction{' and dictionary recovery' if args.features else ''}, on all {scores['rows']} rows:")
    _print_flat(scores)
    flat = dict(scores)
    if concepts is not None:
        concepts["reconstruction"] = scores  # on every row; the table's fvu is on the test rows
        st = concepts["settings"]
        suite = (f"the suite on a seeded subsample of {st['suite_train_rows']} train + {st['suite_test_rows']} test "
                 f"rows (--suite-rows {st['suite_rows_limit']})" if st["suite_subsampled"] else "the suite on every row")
        print(f"\nconcept scores: fitted on {st['train_rows']} train rows, scored on {st['test_rows']} test rows "
              f"(seed {st['seed']}); {suite}:")
        header, rows = concept_table(concepts)
        w = max(len(r[0]) for r in rows)
        print("  ".join(f"{h:>12}" if i else f"{h:<{w}}" for i, h in enumerate(header)))
        for r in rows:
            print("  ".join(f"{v:>12.4f}" if i else f"{v:<{w}}" for i, v in enumerate(r)))
        path = Path(args.sae) / EVALUATION
        write_json(path, concepts)
        print(f"wrote {path} (untwine report {args.sae})")
        flat = {**concepts["sae"], **scores, "fvu_test_rows": concepts["sae"].get("fvu"),
                **{k: st[k] for k in ("suite_train_rows", "suite_test_rows")}}
        if concepts["baselines"]:
            flat |= {f"{b}.{k}": v for b, s in concepts["baselines"].items() for k, v in s.items()}
    if args.json:
        write_json(args.json, {**flat, **({UNDEFINED_KEY: undefined} if undefined else {})})
        print(f"wrote {args.json}")
    return 0


def _print_flat(scores) -> None:
    width = max(len(k) for k in scores)
    for k, v in scores.items():
        print(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")


def run_synthetic(args) -> int:
    from untwine._checks import check_seed

    check_seed(args.seed)
    from untwine.sae.synthetic import synthetic_to_dir

    paths, info = synthetic_to_dir(
        args.out, features=args.features, dim=args.dim, samples=args.samples, active=args.active,
        freq_power=args.freq_power, mag_std=args.mag_std, correlation=args.correlation,
        hierarchy=args.hierarchy, children=args.children, noise=args.noise, seed=args.seed,
    )
    print(json.dumps(info))
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0
