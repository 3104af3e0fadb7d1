"""Running a study as Ray tasks on a local Ray instance started by the test.

Ray is an optional extra (``pip install 'untwine[ray]'``); where it is not
installed this test is skipped and says so.
"""

import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_study_run import _write_spec  # noqa: E402

from untwine.errors import UntwineError
from untwine.study.runner import run_study
from untwine.study.spec import expand, load_spec


def test_without_ray_the_option_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    spec = load_spec(_write_spec(tmp_path, models=["vae"], seeds=[0]))
    with pytest.raises(UntwineError, match=r"--ray needs the ray package \(pip install 'untwine\[ray\]'\)"):
        run_study(spec, tmp_path / "out", ray="auto", progress=False)


def test_study_runs_as_ray_tasks_on_a_local_instance(tmp_path):
    try:
        import ray
    except ImportError:
        pytest.skip("ray is not installed (optional extra: pip install 'untwine[ray]'); the Ray executor is untested here")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        spec = load_spec(_write_spec(tmp_path, models=["vae"], seeds=[0, 1], retries=0))
        out = tmp_path / "out"
        res = run_study(spec, out, ray="auto", progress=False, threads=1)
        runs = expand(spec)
        assert res.ok and sorted(res.done) == sorted(r.run_id for r in runs)
        assert {rep["pid"] for rep in res.reports.values()}.isdisjoint({__import__("os").getpid()})
        conn = sqlite3.connect(out / "results.sqlite")
        done = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0]
        udr = conn.execute("SELECT COUNT(*) FROM metrics WHERE name = 'udr'").fetchone()[0]
        mig = conn.execute("SELECT COUNT(*) FROM metrics WHERE name = 'mig' AND value IS NOT NULL").fetchone()[0]
        conn.close()
        assert done == 2 and mig == 2 and udr == 2
        again = run_study(spec, out, ray="auto", progress=False, threads=1)
        assert sorted(again.skipped) == sorted(res.done) and not again.done
    finally:
        ray.shutdown()
