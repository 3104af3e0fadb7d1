"""Studies: sweeps over models x hyper-parameters x seeds x datasets, one results table, comparisons.

* :func:`load_spec` / :func:`expand` (:mod:`untwine.study.spec`): the YAML study file and its runs;
* :func:`run_study` (:mod:`untwine.study.runner`): parallel, idempotent, fault-tolerant execution,
  locally or on a Ray cluster (``untwine study run``): one scheduling loop over the executors of
  :mod:`untwine.study.executors` (this process, a process pool, Ray), each running
  :func:`execute_run` (:mod:`untwine.study.worker`, one run); several runners share a study
  through :mod:`untwine.study.leases`; the study directory's layout is :mod:`untwine.study.folder`;
* :mod:`untwine.study.results`: the SQLite results database (``untwine study results``);
* :func:`compare_study` (:mod:`untwine.study.compare`): distributions, rank correlations,
  hyper-parameter curves and a text summary (``untwine study compare``);
* :func:`udr_scores` (:mod:`untwine.study.udr`): unsupervised model selection (Duan et al. 2020),
  and :func:`compute_study_udr`, the UDR of a study's seeds.
"""

# imported lazily so that `import untwine.study.results` (and the CLI) stay light
_EXPORTS = {
    "compare_study": "untwine.study.compare",
    "query": "untwine.study.results",
    "StudyResult": "untwine.study.runner",
    "compute_study_udr": "untwine.study.udr",
    "execute_run": "untwine.study.worker",
    "run_study": "untwine.study.runner",
    "RunSpec": "untwine.study.spec",
    "StudySpec": "untwine.study.spec",
    "expand": "untwine.study.spec",
    "load_spec": "untwine.study.spec",
    "parse_spec": "untwine.study.spec",
    "udr_pairwise": "untwine.study.udr",
    "udr_scores": "untwine.study.udr",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'untwine.study' has no attribute {name!r}")
