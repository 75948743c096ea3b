"""The request pipeline: the one path every generation takes."""

from runapi.pipeline.hooks import PipelineHooks
from runapi.pipeline.pipeline import Pipeline

__all__ = ["Pipeline", "PipelineHooks"]
