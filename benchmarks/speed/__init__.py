"""Speed benchmarks: CPU and wall time, and memory, of facematch's commands and engines."""
