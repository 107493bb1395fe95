"""The platform's wiring: database, object store, vector index and encoder built from settings.

One :class:`Services` per process. The embedded profile migrates its SQLite file at start-up;
the services profile expects the one-shot migration (``aioreid db upgrade``) to have run.
The encoder is loaded lazily (the API can serve review and job routes without it).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from aioreid.encoder.inference import Encoder
from aioreid.platform.config import Profile, Settings
from aioreid.platform.db import crud
from aioreid.platform.db.engine import engine_from_settings, session_factory
from aioreid.platform.db.migrate import init_database
from aioreid.platform.index import VectorIndex, build_index
from aioreid.platform.storage import ObjectStore, build_store


class EncoderUnavailable(RuntimeError):
    """No encoder checkpoint is configured or it cannot be loaded."""


@dataclass
class Services:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ObjectStore
    index: VectorIndex
    _encoder: Encoder | None = None
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
        return cls(
            settings=settings,
            engine=engine,
            sessions=session_factory(engine),
            store=build_store(settings),
            index=build_index(settings),
            _encoder=encoder,
        )

    @property
    def encoder(self) -> Encoder:
        """The configured encoder, loaded on first use."""
        with self._lock:
            if self._encoder is None:
                self._encoder = self._load_encoder()
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
        return Encoder.load(
            ckpt,
            device=cfg.device,
            batch_size=cfg.batch_size,
            local_files_only=cfg.local_files_only,
        )

    def live_collection(self) -> str:
        """The collection of the current encoder, created (and made live when nothing is) on
        first use; the encoder version is registered in the database."""
        enc = self.encoder
        name = self.index.collection_for_version(enc.version)
        self.index.create_collection(name, enc.dim, quantization=self.settings.index.quantization)
        with self.sessions.begin() as s:
            version = crud.register_encoder_version(
                s,
                version=enc.version,
                backbone=enc.model.backbone.backbone_id,
                checkpoint=enc.checkpoint_hash,
                dim=enc.dim,
            )
            if self.index.resolve_alias(self.settings.index.alias) is None:
                gen = crud.create_generation(s, encoder_version_id=version.id, collection=name)
                crud.set_generation_status(s, gen.id, "live")
                self.index.set_alias(self.settings.index.alias, name)
        return name

    @property
    def alias(self) -> str:
        return self.settings.index.alias

    def close(self) -> None:
        self.index.close()
        self.engine.dispose()
