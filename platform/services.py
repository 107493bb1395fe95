"""The platform's wiring: database, object store, vector index and encoder built from settings.

One :class:`Services` per process. The embedded profile migrates its SQLite file at start-up;
the services profile expects the one-shot migration (``aioreid db upgrade``) to have run.
The encoder is loaded lazily (the API can serve review and job routes without it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from aioreid.encoder.inference import INT8_SUFFIX, Encoder, ExportManifestError
from aioreid.platform.config import EncoderSettings, Profile, Settings
from aioreid.platform.db import crud
from aioreid.platform.db.engine import engine_from_settings, session_factory
from aioreid.platform.db.migrate import init_database
from aioreid.platform.db.models import EncoderVersion, IndexGeneration
from aioreid.platform.index import VectorIndex, build_index
from aioreid.platform.storage import ObjectStore, build_store


class EncoderUnavailable(RuntimeError):
    """No encoder checkpoint is configured or it cannot be loaded."""


def load_encoder(path: Path, cfg: EncoderSettings, *, version: str | None = None) -> Encoder:
    """The encoder of checkpoint ``path`` in the configured runtime (``cfg.runtime``).

    With ``version`` (an encoder that built an index generation), the runtime follows the
    version: ``...+int8`` runs the int8 ONNX graphs exported next to the checkpoint; another
    version runs in the configured runtime, and when that is ONNX but the checkpoint has no
    matching export, in PyTorch, whose vectors are the same (parity-checked at export).
    """
    common = {
        "device": cfg.device,
        "batch_size": cfg.batch_size,
        "local_files_only": cfg.local_files_only,
    }
    if version is None:
        if cfg.runtime == "torch":
            return Encoder.load(path, **common)
        return Encoder.load(
            path,
            runtime="onnx",
            onnx_dir=cfg.onnx_dir,
            int8=cfg.onnx_int8,
            threads=cfg.onnx_threads,
            **common,
        )
    int8 = version.endswith(INT8_SUFFIX)
    if int8 or cfg.runtime == "onnx":
        folders = [cfg.onnx_dir, None] if cfg.onnx_dir is not None else [None]
        for folder in folders:
            try:
                return Encoder.load(
                    path,
                    runtime="onnx",
                    onnx_dir=folder,
                    int8=int8,
                    threads=cfg.onnx_threads,
                    **common,
                )
            except ExportManifestError:
                if int8 and folder is folders[-1]:
                    raise
    return Encoder.load(path, **common)


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    index: VectorIndex
    _encoder: Encoder | None = None
    _by_version: dict[str, Encoder] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, encoder: Encoder | None = None, migrate: bool | None = None
    ) -> Services:
        """Build every service; ``migrate`` defaults to True for the embedded profile."""
        settings.home.mkdir(parents=True, exist_ok=True)
        url = settings.database_url
        if migrate if migrate is not None else settings.profile is Profile.EMBEDDED:
            init_database(url)
        engine = engine_from_settings(settings)
        svc = cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            store=build_store(settings),
            index=build_index(settings),
            _encoder=encoder,
        )
        if encoder is not None:
            svc._by_version[encoder.version] = encoder
        return svc

    @property
    def encoder(self) -> Encoder:
        """The configured encoder (the one new index generations are built with)."""
        with self._lock:
            if self._encoder is None:
                self._encoder = self._load_encoder()
                self._by_version[self._encoder.version] = self._encoder
            return self._encoder

    def _load_encoder(self) -> Encoder:
        cfg = self.settings.encoder
        ckpt = cfg.checkpoint
        if ckpt is None:
            default = self.settings.home / "train" / "cpu-synthetic" / "final.pt"
            ckpt = default if default.exists() else None
        if ckpt is None or not Path(ckpt).exists():
            raise EncoderUnavailable(
                "no encoder checkpoint: set AIOREID_ENCODER__CHECKPOINT or run `aioreid train`"
            )
        return self._load(Path(ckpt))

    def _load(self, path: Path, version: str | None = None) -> Encoder:
        try:
            return load_encoder(path, self.settings.encoder, version=version)
        except ExportManifestError as exc:
            raise EncoderUnavailable(str(exc)) from exc

    def register_encoder(self, enc: Encoder) -> int:
        """Record an encoder version (and keep it loaded); returns its row id."""
        with self._lock:
            self._by_version.setdefault(enc.version, enc)
        with self.sessions.begin() as s:
            row = crud.register_encoder_version(
                s,
                version=enc.version,
                backbone=enc.backbone_id,
                checkpoint=enc.source,
                dim=enc.dim,
            )
            return row.id

    def encoder_for(self, version: str) -> Encoder:
        """The encoder that made ``version``'s vectors (loaded from its checkpoint once)."""
        with self._lock:
            if version in self._by_version:
                return self._by_version[version]
        with self.sessions() as s:
            row = s.scalar(select(EncoderVersion).where(EncoderVersion.version == version))
            path = row.checkpoint if row is not None else None
        if path is None or not Path(path).is_file():
            raise EncoderUnavailable(
                f"encoder {version!r} is not loaded here and its checkpoint is unknown or missing"
            )
        enc = self._load(Path(path), version)
        if enc.version != version:
            raise EncoderUnavailable(
                f"checkpoint {path} now gives encoder {enc.version}, not {version}"
            )
        with self._lock:
            return self._by_version.setdefault(version, enc)

    def live(self) -> tuple[str, Encoder]:
        """The collection behind the search alias and the encoder that built it.

        When nothing is live yet, the configured encoder's collection is created and made
        live. After a re-index swaps the alias, the next call follows it: the new encoder is
        loaded here and searches never mix vector spaces.
        """
        collection = self.index.resolve_alias(self.alias)
        if collection is None:
            return self._bootstrap()
        with self.sessions() as s:
            version = s.scalar(
                select(EncoderVersion.version)
                .join(IndexGeneration, IndexGeneration.encoder_version_id == EncoderVersion.id)
                .where(IndexGeneration.collection == collection)
            )
        if version is None:
            raise EncoderUnavailable(f"the live collection {collection!r} has no generation row")
        return collection, self.encoder_for(version)

    def _bootstrap(self) -> tuple[str, Encoder]:
        enc = self.encoder
        name = self.index.collection_for_version(enc.version)
        self.index.create_collection(name, enc.dim, quantization=self.settings.index.quantization)
        version_id = self.register_encoder(enc)
        with self.sessions.begin() as s:
            gen = s.scalar(select(IndexGeneration).where(IndexGeneration.collection == name))
            if gen is None:
                gen = crud.create_generation(s, encoder_version_id=version_id, collection=name)
            if gen.status != "live":
                crud.set_generation_status(s, gen.id, "live")
        self.index.set_alias(self.alias, name)
        return name, enc

    def live_collection(self) -> str:
        """The collection behind the search alias (created on first use)."""
        return self.live()[0]

    @property
    def alias(self) -> str:
        return self.settings.index.alias

    def close(self) -> None:
        self.index.close()
        self.engine.dispose()
