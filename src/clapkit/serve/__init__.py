"""``clapkit serve``: the sound search as an HTTP service (FastAPI + uvicorn) with a web page.

Builds on :mod:`clapkit.index`; the library never imports this package.
"""
