"""Running a study as Ray tasks on a local Ray instance started by the test.

Ray is an optional extra (``pip install 'untwine[ray]'``); where it is not
installed this test is skipped and says so.
"""

import os
import sqlite3
import subprocess
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
    assert not (tmp_path / "out").exists()  # refused before any work


def test_study_runs_as_ray_tasks_on_a_local_instance(tmp_path):
    try:
        import ray
    except ImportError:
        pytest.skip("ray is not installed (optional extra: pip install 'untwine[ray]'); the Ray executor is untested here")
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        spec_file = _write_spec(tmp_path, models=["vae"], seeds=[0, 1], retries=0)
        spec = load_spec(spec_file)
        out = tmp_path / "out"
        runs = expand(spec)
        # the command line connects to the running instance by its address, as to any cluster
        address = ctx.address_info["address"]
        cmd = [sys.executable, "-m", "untwine", "study", "run", str(spec_file), "--out", str(out), "--ray", address,
               "--threads", "1", "--no-progress"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "2 done now" in proc.stdout
        conn = sqlite3.connect(out / "results.sqlite")
        done = conn.execute("SELECT COUNT(*) FROM runs WHERE status = 'done'").fetchone()[0]
        udr = conn.execute("SELECT COUNT(*) FROM metrics WHERE name = 'udr'").fetchone()[0]
        mig = conn.execute("SELECT COUNT(*) FROM metrics WHERE name = 'mig' AND value IS NOT NULL").fetchone()[0]
        conn.close()
        assert done == 2 and mig == 2 and udr == 2
        # from Python, in the process that holds the Ray instance: finished runs are skipped,
        # a missing evaluation is redone as a Ray task (in a Ray worker process)
        (out / "runs" / runs[1].run_id / "metrics.json").unlink()
        again = run_study(spec, out, ray="auto", progress=False, threads=1)
        assert again.skipped == [runs[0].run_id] and again.done == [runs[1].run_id] and again.ok
        rep = again.reports[runs[1].run_id]
        assert rep["pid"] != os.getpid() and rep["trained_steps"] == 0 and not rep["reused_evaluation"]
    finally:
        ray.shutdown()
