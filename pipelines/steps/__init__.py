"""Per-document steps of the cleaning job.

Each module holds one concern; each step is a small class with one job that works on
one document (a plain ``dict``, see :mod:`pipelines.steps.base`). The Beam job
(:mod:`pipelines.clean`) and the bare-loop benchmark call the very same objects.
"""
