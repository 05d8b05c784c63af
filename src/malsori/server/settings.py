"""Server settings: environment variables with the ``MALSORI_`` prefix (pydantic-settings),
overridable by ``malsori serve`` flags. One instance per app, injected as a dependency."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..options import DecodeOptions


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MALSORI_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    model: str = Field("base", description="default model; also what 'whisper-1' means")
    compute_type: str = "int8"
    device: str = "auto"
    threads: int | None = None
    batch_size: int = DecodeOptions.batch_size
    beam_size: int = DecodeOptions.beam_size
    preload: bool = Field(True, description="load the default model at start-up (/ready)")
    api_key: SecretStr | None = None
    max_upload_mb: float = 25.0
    max_audio_seconds: float = 4 * 3600.0
    request_timeout_s: float = 900.0
    max_concurrent: int = Field(1, ge=1, description="transcriptions running at once")
    max_queue: int = Field(8, ge=0, description="requests waiting; beyond it: 429")
    model_idle_unload_s: float = Field(
        900.0, description="unload a model idle this long; 0 = never"
    )
    cors_origins: list[str] = Field(default_factory=list, description="empty = CORS off")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
