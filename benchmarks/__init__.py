"""Side-by-side benchmarks: serving throughput and drift computation (``make bench``)."""
