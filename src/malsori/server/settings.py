"""Server settings: environment variables with the ``MALSORI_`` prefix (pydantic-settings),
overridable by ``malsori serve`` flags. One instance per app, injected as a dependency.

docs/server.md describes every setting and the defaults' reasons."""

from __future__ import annotations

import socket

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..engine import DEFAULT_COMPUTE_TYPE, EngineConfig
from ..options import MAX_BATCH, MAX_BEAM, DecodeOptions

#: Host names every server answers to (besides the bound address and ``allowed_hosts``).
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")
_ANY_ADDRESS = ("0.0.0.0", "::", "")


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MALSORI_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    model: str = Field("base", description="default model; also what 'whisper-1' means")
    compute_type: str = DEFAULT_COMPUTE_TYPE
    device: str = "auto"
    threads: int | None = None
    # the bounds DecodeOptions enforces: refused at start-up, not in every request
    batch_size: int = Field(DecodeOptions.batch_size, ge=1, le=MAX_BATCH)
    beam_size: int = Field(DecodeOptions.beam_size, ge=0, le=MAX_BEAM)
    preload: bool = Field(True, description="load the default model at start-up (/ready)")
    api_key: SecretStr | None = None
    max_upload_mb: float = 25.0
    max_audio_seconds: float = Field(
        2 * 3600.0,
        gt=0,
        description="longest audio accepted; decoding stops there (memory: ~230 MB per hour)",
    )
    request_timeout_s: float = Field(900.0, gt=0)
    max_concurrent: int = Field(1, ge=1, description="transcriptions running at once")
    max_queue: int = Field(8, ge=0, description="requests waiting; beyond it: 429")
    max_live_sessions: int = Field(
        2, ge=0, description="live transcriptions (/v1/realtime) at once; beyond: refused"
    )
    live_idle_timeout_s: float = Field(
        60.0, gt=0, description="a live session with no client event this long is closed"
    )
    live_max_backlog_s: float = Field(
        600.0,
        gt=0,
        description="audio a live session may hold untranscribed (a client sending faster "
        "than real time); beyond it: transcribed, then refused (~64 KB per second)",
    )
    model_idle_unload_s: float = Field(
        900.0, description="unload a model idle this long; 0 = never"
    )
    cors_origins: list[str] = Field(default_factory=list, description="empty = CORS off")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host header names accepted besides localhost and the bound address "
        "(a reverse proxy's name); '*' accepts any",
    )
    allow_model_paths: bool = Field(
        False, description="accept model directories as model names (admin only)"
    )
    header_timeout_s: float = Field(10.0, gt=0, description="to receive a request's headers")
    body_timeout_s: float = Field(300.0, gt=0, description="to receive a request's body")
    keep_alive_s: int = Field(5, ge=1, description="idle keep-alive connections are closed")
    shutdown_timeout_s: int = Field(
        60,
        ge=1,
        description="after SIGTERM/SIGINT, how long requests already running may take to "
        "finish; then they are cut off and the server exits",
    )
    max_connections: int = Field(100, ge=1, description="open connections; beyond: refused")
    max_connections_per_client: int = Field(
        25,
        ge=1,
        description="open connections from one client address, on a server bound to a "
        "non-loopback address; beyond: refused (behind a reverse proxy on another machine "
        "every client has the proxy's address: raise it to max_connections)",
    )

    def engine(self, model: str | None = None) -> EngineConfig:
        """The engine settings for ``model`` (default: the server's default model)."""
        return EngineConfig(
            model=model or self.model,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.threads,
        )

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def trusted_hosts(self) -> set[str] | None:
        """Host names (without port) the server answers to; None = any."""
        if "*" in self.allowed_hosts:
            return None
        names = {*LOCAL_HOSTS, *(h.lower() for h in self.allowed_hosts)}
        if self.host in _ANY_ADDRESS:  # every address of this machine, and its names
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
            names |= {_bracket(a) for a in _interface_addresses()}
        else:
            names |= {self.host.lower(), _bracket(self.host.lower())}
        return names


def _bracket(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _interface_addresses() -> set[str]:
    import psutil

    return {
        a.address.split("%")[0].lower()
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family in (socket.AF_INET, socket.AF_INET6)
    }
