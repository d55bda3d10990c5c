"""Side-by-side load tests of jupyter-serve against `mlflow models serve` (`make bench`).

Run as `python -m benchmarks.run`; results land in `benchmarks/results/`.
"""
