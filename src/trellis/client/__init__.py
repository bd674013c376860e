"""Calling Trellis services from clients (CLIs, scripts, apps)."""

from trellis.bootstrap import ConnectError
from trellis.client.core import TrellisClient, connect_client

__all__ = ["ConnectError", "TrellisClient", "connect_client"]
