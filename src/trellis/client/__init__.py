"""Calling Trellis services from clients (CLIs, scripts, apps)."""

from trellis.client.core import ClientConnectError, TrellisClient, connect_client

__all__ = ["ClientConnectError", "TrellisClient", "connect_client"]
