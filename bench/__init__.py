"""Benchmarks, each printing a table of ratios against a baseline measured in the same run.

Run them from the repository root as modules: ``python -m bench.store`` (run by path, ``bench/store.py``
would shadow the ``store`` package).
"""
