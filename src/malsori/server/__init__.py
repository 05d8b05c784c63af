"""malsori.server: an HTTP server compatible with OpenAI's audio API, plus a web page."""

from __future__ import annotations

from .app import create_app
from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
