"""The build half of the pipeline: prepare -> backend build -> repair -> verify -> smoke -> wheelhouse.

Backends sit side by side under pipeline/builders/backends/ behind one small protocol (backends/__init__.py);
the orchestrator (one job = recipe x target x Python) knows nothing about any backend's internals.
"""
