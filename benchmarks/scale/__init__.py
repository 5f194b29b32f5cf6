"""Scale benchmarks: search, clustering and the library at 10,000 to a million faces."""
