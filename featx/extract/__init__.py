"""Extraction: images -> backbone features -> :class:`FeatureSet`, cached once per image content.

One engine-neutral driver (:mod:`~featx.extract.driver`: hashing, locking, assembly) serves two
engines (:data:`ENGINES`): ``local`` (:mod:`~featx.extract.local`: decode threads and the backbone
in this process) and ``ray`` (:mod:`~featx.extract.ray`). :mod:`~featx.extract.forward` runs the
backbone at a fixed batch shape and counts every image it sends; :func:`cache_verify` checks a
cached file's digests and re-extracts a sample of its rows (or all) to compare them.
"""

from featx.extract.config import ExtractorConfig
from featx.extract.engines import ENGINES, extract_features, forward_seconds
from featx.extract.featureset import FeatureSet
from featx.extract.forward import forward_pass_count, has_gpu
from featx.extract.options import ExecutionOptions
from featx.extract.ray import extract_on_ray
from featx.extract.verify import VerifyReport, cache_verify

__all__ = ["ENGINES", "ExecutionOptions", "ExtractorConfig", "FeatureSet", "VerifyReport",
           "cache_verify", "extract_features", "extract_on_ray", "forward_pass_count",
           "forward_seconds", "has_gpu"]
