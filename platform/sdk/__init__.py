"""Typed Python SDK for the search API: over HTTP (:class:`Client`) or, on one machine, with
the API served in-process (:func:`in_process_client`)."""

from aioreid.platform.pipeline.detector_names import DETECTOR_NAMES
from aioreid.platform.sdk.client import ApiError, Client
from aioreid.platform.sdk.embedded import in_process_client

__all__ = ["DETECTOR_NAMES", "ApiError", "Client", "in_process_client"]
