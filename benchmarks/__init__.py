"""facematch's benchmarks, by kind: ``python -m benchmarks`` lists them.

``python -m benchmarks NAME [ARGS...]`` runs one, as ``python -m benchmarks.KIND.NAME`` does.
"""
