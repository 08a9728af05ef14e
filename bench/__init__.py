"""Benchmarks, run as modules from the project root: ``python -m bench.run`` (models and pipeline),
``python -m bench.load`` (concurrent browser sessions), ``python -m bench.batch`` (the Dask batch
scorer), ``python -m bench.profile_page`` (cProfile of the predict page). ``bench.harness`` holds the
server, browser and memory probes they and the browser tests share."""
