"""Benchmark suite: ``python -m bench [--only caption|ssl|search] [--quick] [--device D] [--out DIR]``.

Each area compares the reference way (what a user writes from the model card or the original
notebook) with the project's way, on the same machine in the same run.
"""
