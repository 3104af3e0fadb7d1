"""``untwine score`` end to end through ``untwine.cli.main``, and array file reading."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from untwine.cli import main
from untwine.errors import UntwineError
from untwine.examples import make_example_arrays
from untwine.files import read_scores
from untwine.arrays import read_array
from untwine.metrics.suite import SCORE_KEYS, evaluate_arrays, split_train_test

N = 600
FAST = "mig,sap"  # cheap metrics for the tests that only check plumbing


@pytest.fixture(scope="module")
def arrays():
    return make_example_arrays(n=N, seed=11)


@pytest.fixture()
def files(tmp_path, arrays):
    codes, factors = arrays
    c, f = tmp_path / "codes.npy", tmp_path / "factors.npy"
    np.save(c, codes)
    np.save(f, factors)
    return c, f


def score(*argv):
    return main(["score", *map(str, argv)])


def one_line_error(capsys, rc, pattern):
    """Exit status 2 and exactly one stderr line ``error: ...`` matching ``pattern``."""
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    assert re.search(pattern, err[0]), err[0]
    return err[0]


# --- success paths ---------------------------------------------------------------------------
def test_all_metrics_json_has_exactly_the_keys(files, tmp_path, arrays, capsys):
    c, f = files
    out = tmp_path / "sub" / "scores.json"
    assert score(c, f, "--json", out, "--seed", 4) == 0
    data = json.loads(out.read_text())
    # the scores, then which estimator produced DCI (a fast number is not a paper's GBT number)
    assert list(data) == [*SCORE_KEYS, "_dci_estimator"]
    assert data.pop("_dci_estimator") == "fast"
    assert all(isinstance(v, float) for v in data.values())
    assert read_scores(out) == data  # readers of scores files skip the label
    # the same numbers as the library call on the same seeded split
    # the same numbers as the library call on the same seeded split (the cheap metrics; the
    # suite's own tests check the wiring of every metric)
    codes, factors = arrays
    expected = evaluate_arrays(codes, factors, seed=4, metrics="mig,sap,modularity,explicitness,irs,unsupervised")
    assert {k: data[k] for k in expected} == pytest.approx(expected, abs=1e-12)
    shown = capsys.readouterr().out
    assert "train 400 rows, test 200 rows" in shown and "seed 4" in shown
    assert "dci_disentanglement" in shown and "infoc" in shown
    assert "dci estimator: fast (untwine's LightGBM estimator, not the GBT of disentanglement_lib" in " ".join(shown.split())


def test_metric_subset_and_seed_determinism(files, tmp_path):
    c, f = files
    a, b, d = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "d.json"
    assert score(c, f, "--metrics", FAST, "--json", a, "--seed", 1) == 0
    assert score(c, f, "--metrics", "SAP, mig", "--json", b, "--seed", 1) == 0
    assert score(c, f, "--metrics", FAST, "--json", d, "--seed", 2) == 0
    ja, jb, jd = (json.loads(p.read_text()) for p in (a, b, d))
    assert list(ja) == ["mig", "sap"]
    assert ja == jb  # same seed, same split, same numbers
    assert ja != jd  # another seed draws another split


def test_given_test_split(tmp_path, arrays):
    codes, factors = arrays
    tr_c, tr_f, te_c, te_f = split_train_test(codes, factors, 9)
    paths = {}
    for name, arr in dict(tc=tr_c, tf=tr_f, ec=te_c, ef=te_f).items():
        paths[name] = tmp_path / f"{name}.npy"
        np.save(paths[name], arr)
    out = tmp_path / "s.json"
    rc = score(paths["tc"], paths["tf"], "--test-codes", paths["ec"], "--test-factors", paths["ef"],
               "--metrics", "sap,mig", "--json", out)
    assert rc == 0
    data = json.loads(out.read_text())
    assert data == pytest.approx(evaluate_arrays(tr_c, tr_f, te_c, te_f, metrics="mig,sap"), abs=1e-12)


def test_npz_csv_tsv_inputs_give_the_same_scores(tmp_path, files, arrays):
    codes, factors = arrays
    ref = tmp_path / "ref.json"
    c, f = files
    assert score(c, f, "--metrics", FAST, "--json", ref) == 0
    expected = json.loads(ref.read_text())

    # npz: first array by default, --key for both files, archive.npz:key per file
    np.savez(tmp_path / "c.npz", codes)
    np.savez(tmp_path / "f.npz", factors)
    np.savez(tmp_path / "both.npz", codes=codes, factors=factors)
    np.savez(tmp_path / "kc.npz", z=codes)
    np.savez(tmp_path / "kf.npz", z=factors)
    # csv with a header row and full precision, tsv without header
    np.savetxt(tmp_path / "c.csv", codes, delimiter=",", header=",".join(f"z{i}" for i in range(10)), comments="",
               fmt="%.17g")
    np.savetxt(tmp_path / "f.tsv", factors, delimiter="\t", fmt="%d")
    cases = [
        (tmp_path / "c.npz", tmp_path / "f.npz"),
        (f"{tmp_path / 'both.npz'}:codes", f"{tmp_path / 'both.npz'}:factors"),
        (tmp_path / "kc.npz", tmp_path / "kf.npz", "--key", "z"),
        (tmp_path / "c.csv", tmp_path / "f.tsv"),
    ]
    for i, case in enumerate(cases):
        out = tmp_path / f"o{i}.json"
        assert score(*case, "--metrics", FAST, "--json", out) == 0, case
        assert json.loads(out.read_text()) == pytest.approx(expected, abs=1e-12), case


def test_factor_bins_discretises_continuous_factors(tmp_path, arrays, capsys):
    codes, factors = arrays
    cont = factors + np.random.default_rng(0).uniform(-0.3, 0.3, factors.shape)
    np.save(tmp_path / "c.npy", codes)
    np.save(tmp_path / "f.npy", cont)
    rc = score(tmp_path / "c.npy", tmp_path / "f.npy", "--metrics", FAST)
    one_line_error(capsys, rc, r"factor 0 has non-integer values.*--factor-bins N")
    out = tmp_path / "s.json"
    assert score(tmp_path / "c.npy", tmp_path / "f.npy", "--metrics", FAST, "--factor-bins", 8, "--json", out) == 0
    assert list(json.loads(out.read_text())) == ["mig", "sap"]


def test_demo_runs_without_files(tmp_path, capsys):
    out = tmp_path / "demo.json"
    assert score("--demo", "--metrics", FAST, "--json", out) == 0
    assert list(json.loads(out.read_text())) == ["mig", "sap"]
    assert "generated example" in capsys.readouterr().out


def test_one_factor_scores_undefined_in_one_warning_line(tmp_path, arrays, capsys):
    """With a single factor the scores of concentration over factors (DCI disentanglement,
    modularity, InfoM) are null, listed under _undefined, and one warning line says why."""
    codes, factors = arrays
    np.save(tmp_path / "c.npy", codes)
    np.save(tmp_path / "f.npy", factors[:, 4:5])
    out = tmp_path / "one.json"
    assert score(tmp_path / "c.npy", tmp_path / "f.npy", "--json", out) == 0
    data = json.loads(out.read_text())
    assert data["_undefined"] == ["dci_disentanglement", "modularity", "infom"]
    assert all(data[k] is None for k in data["_undefined"])
    assert all(isinstance(data[k], float) for k in SCORE_KEYS if k not in data["_undefined"])
    warned = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1, warned
    assert re.search(r"dci_disentanglement, modularity and infom are undefined with a single factor", warned[0])


# --- bad input: one line, exit 2 ---------------------------------------------------------------
def test_rows_differ(tmp_path, arrays, capsys):
    codes, factors = arrays
    np.save(tmp_path / "c.npy", codes)
    np.save(tmp_path / "f.npy", factors[:-5])
    one_line_error(capsys, score(tmp_path / "c.npy", tmp_path / "f.npy"), r"has 600 rows but factors .*595")


def test_nan_and_inf(tmp_path, arrays, capsys):
    codes, factors = arrays
    bad = codes.copy()
    bad[7, 3] = np.nan
    np.save(tmp_path / "c.npy", bad)
    np.save(tmp_path / "f.npy", factors)
    one_line_error(capsys, score(tmp_path / "c.npy", tmp_path / "f.npy"), r"codes .*non-finite.*row 7, column 3")
    badf = factors.astype(float)
    badf[2, 1] = np.inf
    np.save(tmp_path / "c.npy", codes)
    np.save(tmp_path / "f.npy", badf)
    one_line_error(capsys, score(tmp_path / "c.npy", tmp_path / "f.npy"), r"factors .*non-finite.*row 2, column 1")


def test_single_valued_factor_is_named(tmp_path, arrays, capsys):
    codes, factors = arrays
    f = factors.copy()
    f[:, 3] = 7
    np.save(tmp_path / "c.npy", codes)
    np.save(tmp_path / "f.npy", f)
    one_line_error(capsys, score(tmp_path / "c.npy", tmp_path / "f.npy"), r"factor 3 takes a single value \(7\)")


def test_unreadable_missing_and_unknown_files(tmp_path, files, capsys):
    c, f = files
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"this is not numpy")
    one_line_error(capsys, score(junk, f), r"junk\.npy: cannot read")
    one_line_error(capsys, score(c, tmp_path / "nope.npy"), r"nope\.npy: no such file")
    (tmp_path / "x.parquet").write_text("x")
    one_line_error(capsys, score(c, tmp_path / "x.parquet"), r"x\.parquet: unknown file type")
    np.savez(tmp_path / "k.npz", a=np.zeros(3), b=np.ones(3))
    one_line_error(capsys, score(c, tmp_path / "k.npz", "--key", "z"), r"no array named 'z'; available: a, b")
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,x\n")
    one_line_error(capsys, score(c, tmp_path / "t.csv"), r"t\.csv: line 3 has a non-numeric value 'x'")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    one_line_error(capsys, score(c, tmp_path / "obj.npy"), r"obj\.npy: .*Python objects")


def test_bad_option_combinations(files, capsys):
    c, f = files
    one_line_error(capsys, score(c, f, "--test-codes", c), r"--test-codes needs --test-factors")
    one_line_error(capsys, score(c, f, "--test-factors", f), r"--test-factors needs --test-codes")
    one_line_error(capsys, score(c, f, "--metrics", "mig,bogus"), r"unknown metric 'bogus'.*valid: all, mig")
    one_line_error(capsys, score(c), r"give CODES and FACTORS")
    one_line_error(capsys, score("--demo", c, f), r"--demo")
    one_line_error(capsys, score(c, f, "--factor-bins", 1), r"--factor-bins must be at least 2")


def test_test_split_must_match_train_columns(tmp_path, arrays, capsys):
    codes, factors = arrays
    for name, arr in dict(c=codes, f=factors, ec=codes[:90, :8], ef=factors[:90]).items():
        np.save(tmp_path / f"{name}.npy", arr)
    rc = score(tmp_path / "c.npy", tmp_path / "f.npy", "--test-codes", tmp_path / "ec.npy",
               "--test-factors", tmp_path / "ef.npy", "--metrics", "mig")
    one_line_error(capsys, rc, r"10 columns but test codes .* 8")


# --- read_array directly ---------------------------------------------------------------------
def test_read_array_formats(tmp_path):
    a = np.arange(12, dtype=np.float64).reshape(4, 3) / 4
    np.save(tmp_path / "a.npy", a)
    np.testing.assert_array_equal(read_array(tmp_path / "a.npy"), a)
    np.savez(tmp_path / "a.npz", first=a, second=a * 2)
    # several arrays and no key: refused (taking the first silently scored an array against itself)
    with pytest.raises(UntwineError, match=r"holds 2 arrays \(first, second\); name one with --key"):
        read_array(tmp_path / "a.npz")
    np.testing.assert_array_equal(read_array(tmp_path / "a.npz", key="second"), a * 2)
    np.savez(tmp_path / "one.npz", only=a)
    np.testing.assert_array_equal(read_array(tmp_path / "one.npz"), a)
    (tmp_path / "a.csv").write_text("# comment\nx,y\n1,2\n\n3,4\n")
    got = read_array(tmp_path / "a.csv")
    np.testing.assert_array_equal(got, [[1, 2], [3, 4]])
    assert got.dtype.kind == "i"  # integer text stays integer (factors)
    (tmp_path / "b.tsv").write_text("0.5\t1e-3\n-2\t3\n")
    np.testing.assert_allclose(read_array(tmp_path / "b.tsv"), [[0.5, 1e-3], [-2, 3]])
    (tmp_path / "r.csv").write_text("1,2\n3\n")
    with pytest.raises(UntwineError, match="line 2 has 1 columns"):
        read_array(tmp_path / "r.csv")
    (tmp_path / "h.csv").write_text("x,y\n")
    with pytest.raises(UntwineError, match="no numeric rows"):
        read_array(tmp_path / "h.csv")
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(UntwineError, match="is a directory"):
        read_array(tmp_path / "d.npy")


def test_score_does_not_import_torch():
    # torch takes seconds to import and the array metrics do not need it
    code = (
        "import sys; from untwine.cli import build_parser; build_parser(); "
        "import untwine, untwine.metrics.suite, untwine.viz.report; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_score_process_imports_only_what_the_suite_uses(tmp_path):
    """Start-up counts: `untwine score` with DCI imports neither torch nor scikit-learn (LightGBM
    tries to) nor scipy.stats, and scikit-learn stays importable afterwards."""
    code = (
        "import sys; from untwine.cli import main; "
        f"rc = main(['score', '--demo', '--metrics', 'dci,mig', '--json', {str(tmp_path / 's.json')!r}]); "
        "heavy = [m for m in ('torch', 'sklearn', 'scipy.stats') if m in sys.modules]; "
        "import sklearn.ensemble; print(rc, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "0 []"
