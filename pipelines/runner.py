"""Choosing the Beam runner for dapt's jobs, in a module of its own so a job does not
import another job's code (and its dependencies) to get it."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions


def pipeline_options(beam_args: list[str] | None) -> tuple[PipelineOptions, object]:
    """Options from pass-through Beam arguments, and the runner to use.

    With no ``--runner`` (or ``--runner=DirectRunner``) the in-process FnApiRunner is
    constructed directly: the DirectRunner would first try to download Prism.
    """
    options = PipelineOptions(beam_args or [])
    runner_name = options.view_as(StandardOptions).runner
    if runner_name in (None, "DirectRunner", "direct"):
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner

        return options, FnApiRunner()
    return options, None
