"""The activations folder: its layout names live in one module, any model writes it with one
resumable writer, and one reader serves every command with both key syntaxes."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from untwine.activations import layout
from untwine.activations.layout import ActivationFolder
from untwine.activations.reader import open_activations, read_activations
from untwine.activations.writer import write_layers
from untwine.cli import main
from untwine.errors import UntwineError

SRC = Path(__file__).resolve().parents[1] / "src" / "untwine"
ITEMS, CHUNK, DIM = 23, 5, 6


def _literals(path: Path) -> set[str]:
    """String constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs}


def test_layout_names_live_in_one_module():
    # factors.npy is also the name of `untwine sae synthetic`'s own file, a different folder
    names = {layout.SUMMARY, layout.MANIFEST, layout.ROWS, layout.TEXTS, layout.FORMAT}
    holders = {str(p.relative_to(SRC)): sorted(names & _literals(p)) for p in SRC.rglob("*.py")}
    holders = {p: n for p, n in holders.items() if n}
    assert holders == {"activations/layout.py": sorted(names)}


def _item_states(s: int, e: int, layers) -> tuple[dict, np.ndarray]:
    """Two rows per input item, a known function of the item and the layer."""
    rows = np.repeat(np.arange(s, e), 2)
    base = rows[:, None] * 10.0 + np.arange(DIM)[None]
    return {layer: (base + 1000 * layer).astype(np.float32) for layer in layers}, rows


def _write(out, compute=_item_states):
    metas = {layer: {"model": "toy", "layer": layer} for layer in (1, 4)}
    first, rows = write_layers(out, metas, compute, items=ITEMS, chunk=CHUNK)
    factors = np.stack([np.arange(ITEMS) % 3, np.arange(ITEMS) % 2], 1)
    ActivationFolder(out).write_tables(rows, {"model": "toy", "factor_names": ["a", "b"], "factor_sizes": [3, 2]},
                                       layers=(1, 4), factors=factors, texts=[f"item {i}" for i in range(ITEMS)])
    return first, rows


def test_write_layers_resumes_bit_identically(tmp_path):
    _write(tmp_path / "full")
    calls = {"n": 0}

    def dies_at_third_chunk(s, e, layers):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return _item_states(s, e, layers)

    with pytest.raises(KeyboardInterrupt):
        _write(tmp_path / "cut", dies_at_third_chunk)
    first, rows = _write(tmp_path / "cut")
    assert first == 2 * CHUNK and np.array_equal(rows, np.repeat(np.arange(ITEMS), 2))
    for name in (layout.layer_name(1), layout.layer_name(4)):
        for f in sorted((tmp_path / "full" / name).iterdir()):
            assert f.read_bytes() == (tmp_path / "cut" / name / f.name).read_bytes(), f.name
    # every name in the folder is one of the layout's
    folder = ActivationFolder(tmp_path / "cut")
    assert sorted(p.name for p in folder.path.iterdir()) == sorted(
        [layout.SUMMARY, layout.ROWS, layout.FACTORS, layout.TEXTS, layout.layer_name(1), layout.layer_name(4)])
    assert sorted(p.name for p in folder.layer_dir(4).iterdir()) == sorted(
        [layout.MANIFEST, *(layout.shard_name(i) for i in range(5))])
    assert folder.layer_dirs() == {1: folder.layer_dir(1), 4: folder.layer_dir(4)}
    ctx = folder.context()
    assert ctx["factor_names"] == ["a", "b"] and ctx["sentences"][7] == "item 7"
    assert np.array_equal(np.load(folder.path / layout.FACTORS)[:, 0], ctx["rows"] % 3)


def test_one_reader_both_key_syntaxes(tmp_path, capsys):
    _write(tmp_path / "f")
    folder = ActivationFolder(tmp_path / "f")
    layer = folder.layer_dir(4)
    expect = _item_states(0, ITEMS, [4])[0][4]
    assert np.array_equal(read_activations(layer), expect)
    assert np.array_equal(open_activations(layer).read(0, 2 * ITEMS), expect)
    # a tensor inside a file: FILE:NAME and --key NAME are one syntax parsed in one place
    shard = layer / layout.shard_name(0)
    by_key = read_activations(shard, key=layout.TENSOR)
    by_name = read_activations(f"{shard}:{layout.TENSOR}")
    assert np.array_equal(by_key, expect[: 2 * CHUNK]) and np.array_equal(by_name, by_key)
    assert np.array_equal(open_activations(f"{shard}:{layout.TENSOR}").read(0, 2 * CHUNK), by_key)
    second = np.random.default_rng(0).normal(size=(60, DIM)).astype(np.float32)
    np.savez(tmp_path / "two.npz", first=expect, second=second)
    assert np.array_equal(read_activations(tmp_path / "two.npz", "second"), second)
    assert np.array_equal(read_activations(f"{tmp_path / 'two.npz'}:second"), second)
    assert np.array_equal(open_activations(f"{tmp_path / 'two.npz'}:second").read(0, 4), second[:4])
    with pytest.raises(UntwineError, match=r"name one with --key K or two\.npz:K"):
        read_activations(tmp_path / "two.npz")
    # the commands agree: untwine health with --key and with FILE:NAME
    args = ["--max-rows", "40"]
    assert main(["health", str(tmp_path / "two.npz"), "--key", "second", "--json", str(tmp_path / "k.json"), *args]) == 0
    assert main(["health", f"{tmp_path / 'two.npz'}:second", "--json", str(tmp_path / "n.json"), *args]) == 0
    assert json.loads((tmp_path / "k.json").read_text()) == json.loads((tmp_path / "n.json").read_text())
    capsys.readouterr()


def test_damaged_layer_is_refused_by_the_stream_too(tmp_path):
    _write(tmp_path / "f")
    shard = ActivationFolder(tmp_path / "f").layer_dir(1) / layout.shard_name(2)
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    for read in (read_activations, open_activations):
        with pytest.raises(UntwineError, match="does not match its SHA-256"):
            read(shard.parent)
