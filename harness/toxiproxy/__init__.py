"""The embedded Toxiproxy-compatible proxy server and a thin client for the Toxiproxy API."""

from .client import ToxiproxyClient, ToxiproxyError

__all__ = ["ToxiproxyClient", "ToxiproxyError"]
