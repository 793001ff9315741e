"""Problem definition: the declarative pipeline spec (pipelines/<name>.yaml)."""

from lakeray.spec.loader import load_spec, spec_hash
from lakeray.spec.models import PipelineSpec, Source

__all__ = ["PipelineSpec", "Source", "load_spec", "spec_hash"]
