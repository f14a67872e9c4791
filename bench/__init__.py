"""Engram's benchmarks. Run them with `make bench` or `python -m bench [--only NAME] [--quick]`.

Each benchmark is a module with `run(args) -> dict` (the JSON it measured) and
`markdown(result) -> str` (its section for BENCHMARKS.md); `bench/__main__.py` lists them.
"""
