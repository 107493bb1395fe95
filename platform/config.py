"""The one settings tree of aio-reid.

Every value can be set from the environment with the ``AIOREID_`` prefix and ``__`` between
nesting levels, e.g. ``AIOREID_DATABASE__URL=postgresql+psycopg://...`` or
``AIOREID_STORAGE__SECRET_KEY=...``; a ``.env`` file in the working directory is read too.
The defaults are the *embedded* profile: everything in one process under ``home``.
"""

from __future__ import annotations

from enum import Enum
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Profile(str, Enum):
    """Embedded: SQLite, in-process vector index, local folder store. Services: the full stack."""

    EMBEDDED = "embedded"
    SERVICES = "services"


class DatabaseSettings(BaseModel):
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset means SQLite under home (embedded profile)",
    )
    echo: bool = False
    busy_timeout_s: float = Field(
        default=30.0, gt=0, description="SQLite: how long a writer waits for another, seconds"
    )


class StorageSettings(BaseModel):
    backend: Literal["local", "minio"] = "local"
    root: Path | None = Field(
        default=None, description="local backend folder; default home/objects"
    )
    endpoint: str = "127.0.0.1:9000"
    secure: bool = False
    bucket: str = "aioreid"
    region: str = "us-east-1"
    access_key: SecretStr = SecretStr("minioadmin")
    secret_key: SecretStr = SecretStr("minioadmin")
    presign_seconds: int = Field(default=3600, gt=0, le=7 * 24 * 3600)
    signing_key: SecretStr = Field(
        default=SecretStr("aioreid-embedded-signing-key-change-me"),
        description="HMAC key for the local backend's presigned /v1/objects URLs; the default "
        "only suits the embedded profile and MUST be changed in the services profile",
    )
    timeout_s: float = Field(
        default=3.0, gt=0, description="minio backend: connect timeout per attempt, seconds"
    )


class IndexSettings(BaseModel):
    backend: Literal["edge", "local", "server"] = Field(
        default="edge",
        description="edge: Qdrant Edge in-process HNSW; local: qdrant-client local mode "
        "(exact scan, for tests); server: a Qdrant server at url",
    )
    path: Path | None = Field(default=None, description="embedded index folder; default home/index")
    url: str = "http://127.0.0.1:6333"
    api_key: SecretStr | None = None
    collection_prefix: str = "aioreid"
    alias: str = "aioreid-live"
    quantization: bool = Field(
        default=False, description="int8 scalar quantization for new collections (rescored)"
    )
    hnsw_m: int = Field(default=16, ge=4, description="HNSW edges per node (edge, server)")
    hnsw_ef_construct: int = Field(default=100, ge=4, description="HNSW build candidates")
    hnsw_ef: int = Field(default=128, ge=1, description="HNSW search candidates per query")
    full_scan_threshold_kb: int = Field(
        default=50_000,
        ge=1,
        description="filters matching fewer vectors than this (KB of vectors) are answered by an "
        "exact scan through the payload index; larger payload blocks get their own HNSW links",
    )
    timeout_s: int = Field(default=30, gt=0, description="server request timeout")


class BrokerSettings(BaseModel):
    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = "redis://127.0.0.1:6379/1"
    runner: str = Field(
        default="in-process",
        min_length=1,
        description="where ingest jobs and re-index generations run: an `aioreid.job_runners` "
        "entry point; in-process (threads of the API process, no broker) or celery (the workers; "
        "the compose stack sets it, --async commands need it)",
    )
    chunk_size: int = Field(default=32, gt=0, description="media per ingest task")
    visibility_timeout_s: int = Field(
        default=3600,
        gt=0,
        description="Redis: a task a dead worker never acknowledged is redelivered after this",
    )
    task_max_retries: int = Field(default=5, ge=0)
    retry_backoff_s: float = Field(default=2.0, gt=0, description="first retry delay, doubled")
    reindex_every_s: float = Field(
        default=300.0, gt=0, description="beat: how often to look for a new encoder version"
    )
    retention_every_s: float = Field(default=3600.0, gt=0, description="beat: retention sweep")
    retention_days: float | None = Field(
        default=None, gt=0, description="media older than this are deleted; None keeps all"
    )
    failed_media_days: float | None = Field(
        default=1.0,
        gt=0,
        description="failed media that gave no sightings (a bad upload) are deleted, bytes and "
        "row, this long after they failed; their job keeps the failure; None keeps them",
    )


class EncoderSettings(BaseModel):
    backbone: str = Field(
        default="minilm-l6",
        description="registry name or hub id / local path of the frozen backbone",
    )
    checkpoint: Path | None = None
    device: str = Field(default="auto", description="auto, cpu, cuda, cuda:N")
    batch_size: int = Field(default=32, gt=0)
    local_files_only: bool = True
    runtime: Literal["torch", "onnx"] = Field(
        default="torch",
        description="torch: the PyTorch model; onnx: the graphs `aioreid export` wrote, in ONNX "
        "Runtime (CPU, or its CUDA provider when installed and the device allows). Same encoder "
        "version for both (parity-checked at export): switching needs no re-index",
    )
    onnx_dir: Path | None = Field(
        default=None,
        description="export folder for runtime onnx; default <checkpoint dir>/<stem>-onnx",
    )
    onnx_int8: bool = Field(
        default=False,
        description="runtime onnx: run the int8 graphs (`aioreid export --int8`); their vectors "
        "have their own encoder version (suffix +int8), so switching re-indexes",
    )
    onnx_threads: int | None = Field(
        default=None, gt=0, description="runtime onnx: intra-op threads; default one per core"
    )


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, gt=0, lt=65536)
    max_upload_mb: float = Field(
        default=20.0, gt=0, description="largest file one upload (or a query image) may be"
    )
    max_files_per_request: int = Field(default=100, gt=0, le=1000)
    max_request_mb: float = Field(
        default=256.0,
        gt=0,
        description="largest upload request body; a larger declared Content-Length is refused "
        "before the body is read",
    )
    bootstrap_api_key: SecretStr | None = Field(
        default=None, description="created (hashed) at start-up when no key with its hash exists"
    )
    ingest_roots: list[Path] = Field(
        default_factory=list,
        description="server folders POST /v1/ingest/folder may read (symlinks resolved); "
        "empty: folder ingest through the API is off",
    )


class SynthSettings(BaseModel):
    identities: int = Field(default=120, gt=1)
    seed: int = 0


class Settings(BaseSettings):
    """Root of the settings tree."""

    model_config = SettingsConfigDict(
        env_prefix="AIOREID_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    profile: Profile = Profile.EMBEDDED
    home: Path = Field(default=Path("var"), description="where embedded state and caches live")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    index: IndexSettings = IndexSettings()
    broker: BrokerSettings = BrokerSettings()
    encoder: EncoderSettings = EncoderSettings()
    api: ApiSettings = ApiSettings()
    synth: SynthSettings = SynthSettings()

    @model_validator(mode="after")
    def _services_need_servers(self) -> Settings:
        if self.profile is Profile.SERVICES:
            if self.database.url is None or self.database.url.startswith("sqlite"):
                raise ValueError("profile 'services' needs AIOREID_DATABASE__URL (Postgres)")
            if self.index.backend != "server":
                raise ValueError("profile 'services' needs AIOREID_INDEX__BACKEND=server")
        return self

    @model_validator(mode="after")
    def _no_default_secrets(self) -> Settings:
        """Outside the embedded profile, a built-in or example secret is refused by name: it
        is public, so links it signs and keys it creates would be anyone's."""
        if self.profile is not Profile.SERVICES:
            return self
        secrets: dict[str, SecretStr | None] = {
            "AIOREID_STORAGE__SIGNING_KEY": self.storage.signing_key,
            "AIOREID_API__BOOTSTRAP_API_KEY": self.api.bootstrap_api_key,
            "AIOREID_INDEX__API_KEY": self.index.api_key,
        }
        if self.storage.backend == "minio":
            secrets["AIOREID_STORAGE__ACCESS_KEY"] = self.storage.access_key
            secrets["AIOREID_STORAGE__SECRET_KEY"] = self.storage.secret_key
        public = [name for name, value in secrets.items() if _is_public_secret(value)]
        if public:
            raise ValueError(
                f"profile 'services' refuses default or example secrets: set {', '.join(public)} "
                "to values of your own"
            )
        return self

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{(self.home / 'aioreid.db').as_posix()}"

    @property
    def storage_root(self) -> Path:
        return self.storage.root or self.home / "objects"

    @property
    def index_path(self) -> Path:
        return self.index.path or self.home / "index"

    def redacted(self) -> dict:
        """The settings as JSON-able data with secrets masked (SecretStr dumps as '**********')."""
        return self.model_dump(mode="json")


#: Secrets everyone knows: the built-in defaults and the placeholders of .env.example.
_PUBLIC_SECRETS = frozenset({"minioadmin", StorageSettings().signing_key.get_secret_value()})


def _is_public_secret(value: SecretStr | None) -> bool:
    if value is None:
        return False
    text = value.get_secret_value()
    return text in _PUBLIC_SECRETS or text.startswith("change-me")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Process-wide settings, read once from the environment."""
    return Settings()
