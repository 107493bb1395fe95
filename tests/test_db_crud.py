"""The metadata CRUD helpers, each test on both SQLite (embedded) and Postgres (services)."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from aioreid.platform.db import crud
from aioreid.platform.db.engine import make_engine, session_factory, session_scope
from aioreid.platform.db.enums import GenerationStatus, JobStatus, KeyRole, MediaStatus
from aioreid.platform.db.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from aioreid.platform.db.migrate import init_database
from aioreid.platform.db.models import (
    ApiKey,
    Assignment,
    Base,
    Camera,
    EncoderVersion,
    JobFailure,
    Media,
    Sighting,
)

SHA = "ab" * 32
UTC = dt.timezone.utc


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def sessions(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgres":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'crud.db'}"
        init_database(url)
    engine = make_engine(url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def s(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session; every table is emptied after the test."""
    session = sessions()
    yield session
    session.rollback()
    session.close()
    with sessions.begin() as cleanup:
        for table in reversed(Base.metadata.sorted_tables):
            cleanup.execute(table.delete())


def _media(s: Session, sha: str = SHA, camera: str | None = "gate") -> Media:
    cam = crud.get_or_create_camera(s, camera) if camera else None
    return crud.create_media(
        s,
        sha256=sha,
        kind="video",
        object_key=f"media/{sha}.mp4",
        size_bytes=1234,
        camera_id=cam.id if cam else None,
    )


def _sighting(s: Session, media: Media, n: int = 0, **kw: object) -> Sighting:
    return crud.add_sighting(
        s,
        media_id=media.id,
        frame_index=n,
        box=(10, 20, 30, 60),
        object_key=f"crops/{n}.jpg",
        modality="rgb",
        **{"quality": 0.9, **kw},  # type: ignore[arg-type]
    )


def test_cameras_are_found_by_name_and_validated(s: Session) -> None:
    ir = crud.get_or_create_camera(s, "yard", modality="ir", location="north")
    again = crud.get_or_create_camera(s, "yard", modality="rgb")
    assert again.id == ir.id and again.modality == "ir"  # the stored camera is not overwritten
    with pytest.raises(InvalidValueError, match="rgb, ir"):
        crud.get_or_create_camera(s, "studio", modality="sketch")
    with pytest.raises(InvalidValueError, match="camera name"):
        crud.get_or_create_camera(s, "  ")
    s.commit()
    assert s.scalar(sa.select(sa.func.count()).select_from(Camera)) == 1


def test_two_transactions_creating_one_camera_get_the_same_row(
    s: Session, sessions: sessionmaker[Session]
) -> None:
    first = sessions()
    try:
        mine = crud.get_or_create_camera(first, "race")  # inserted, not yet committed
        got: list[int] = []
        other = threading.Thread(
            target=lambda: got.append(_camera_in_own_transaction(sessions, "race"))
        )
        other.start()
        other.join(0.5)  # it waits: on the unique index (Postgres) or the write lock (SQLite)
        first.commit()
        other.join(30)
        assert got == [mine.id]
    finally:
        first.close()
    assert s.scalar(sa.select(sa.func.count()).select_from(Camera)) == 1


def _camera_in_own_transaction(sessions: sessionmaker[Session], name: str) -> int:
    with session_scope(sessions) as w:
        return crud.get_or_create_camera(w, name).id


def test_media_is_unique_by_content_and_a_duplicate_loses_nothing(s: Session) -> None:
    first = _media(s)
    s.commit()
    other_cam = crud.get_or_create_camera(s, "pending-camera")  # uncommitted work
    with pytest.raises(AlreadyExistsError) as err:
        _media(s, sha=SHA.upper())  # the same bytes, hash in upper case
    assert err.value.existing_id == first.id
    s.commit()  # the session is still usable and keeps its pending camera
    assert crud.get_media_by_sha(s, SHA).id == first.id  # type: ignore[union-attr]
    assert s.get(Camera, other_cam.id) is not None
    assert first.status == MediaStatus.PENDING == "pending"

    with pytest.raises(InvalidValueError, match="64 hex"):
        _media(s, sha="not-a-hash")
    with pytest.raises(NotFoundError, match="cameras"):
        crud.create_media(
            s, sha256="cd" * 32, kind="image", object_key="k", size_bytes=1, camera_id=999
        )
    with pytest.raises(InvalidValueError, match="image, video"):
        crud.create_media(s, sha256="cd" * 32, kind="audio", object_key="k", size_bytes=1)


def test_timestamps_are_timezone_aware_utc_and_naive_ones_are_refused(s: Session) -> None:
    cam = crud.get_or_create_camera(s, "gate")
    start = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    media = crud.create_media(
        s,
        sha256=SHA,
        kind="video",
        object_key="k",
        size_bytes=1,
        camera_id=cam.id,
        start_time=start,
    )
    s.commit()
    s.expire_all()
    stored = s.get(Media, media.id)
    assert stored is not None
    assert stored.start_time == start and stored.start_time.tzinfo == UTC
    assert stored.start_time.hour == 10
    assert stored.created_at.tzinfo == UTC
    assert abs(dt.datetime.now(UTC) - stored.created_at) < dt.timedelta(minutes=5)
    with pytest.raises(InvalidValueError, match="timezone-aware"):
        _sighting(s, stored, frame_time=dt.datetime(2024, 5, 1, 12, 0))


def test_sightings_inherit_the_camera_and_reject_bad_boxes(s: Session) -> None:
    media = _media(s)
    sighting = _sighting(s, media, attributes={"upper": "red"})
    assert sighting.camera_id == media.camera_id is not None
    assert len(sighting.point_id) == 36
    s.commit()
    s.expire_all()
    assert s.get(Sighting, sighting.id).attributes == {"upper": "red"}  # type: ignore[union-attr]

    with pytest.raises(InvalidValueError, match="positive"):
        crud.add_sighting(s, media_id=media.id, box=(0, 0, 0, 5), object_key="c", modality="ir")
    with pytest.raises(InvalidValueError, match="modality"):
        crud.add_sighting(
            s, media_id=media.id, box=(0, 0, 5, 5), object_key="c", modality="thermal"
        )
    with pytest.raises(InvalidValueError, match="quality"):
        _sighting(s, media, n=2, quality=float("nan"))
    with pytest.raises(AlreadyExistsError, match=sighting.point_id):
        _sighting(s, media, n=1, point_id=sighting.point_id)
    with pytest.raises(NotFoundError, match="media"):
        crud.add_sighting(s, media_id=404, box=(0, 0, 5, 5), object_key="c", modality="rgb")


def test_deleting_media_deletes_its_sightings_and_their_assignments(s: Session) -> None:
    media = _media(s)
    keep = _media(s, sha="cd" * 32)
    person = crud.create_identity(s, label="p1")
    for n in range(3):
        crud.assign(s, _sighting(s, media, n).id, person.id, "auto", "matcher")
    kept = _sighting(s, keep, 9)
    s.commit()

    s.delete(media)
    s.commit()
    assert s.scalars(sa.select(Sighting.id)).all() == [kept.id]
    assert s.scalar(sa.select(sa.func.count()).select_from(Assignment)) == 0

    # the database cascades too, without the ORM
    s.execute(sa.delete(Media).where(Media.id == keep.id))
    s.commit()
    assert s.scalar(sa.select(sa.func.count()).select_from(Sighting)) == 0


def test_reassigning_keeps_history_with_one_active_assignment(s: Session) -> None:
    sighting = _sighting(s, _media(s))
    alice = crud.create_identity(s, label="alice")
    bob = crud.create_identity(s, label="bob")
    crud.assign(s, sighting.id, alice.id, "auto", "matcher", score=0.71)
    crud.assign(s, sighting.id, bob.id, "analyst", "ann")
    s.commit()

    rows = s.scalars(
        sa.select(Assignment).where(Assignment.sighting_id == sighting.id).order_by(Assignment.id)
    ).all()
    assert [(r.identity_id, r.active, r.provenance) for r in rows] == [
        (alice.id, False, "auto"),
        (bob.id, True, "analyst"),
    ]
    assert crud.active_identity_of(s, sighting.id).id == bob.id  # type: ignore[union-attr]
    assert crud.unassign(s, sighting.id) is True
    assert crud.active_identity_of(s, sighting.id) is None
    assert crud.unassign(s, sighting.id) is False


def test_the_database_itself_refuses_two_active_assignments(s: Session) -> None:
    sighting = _sighting(s, _media(s))
    a, b = crud.create_identity(s), crud.create_identity(s)
    crud.assign(s, sighting.id, a.id, "auto", "matcher")
    s.commit()
    s.add(Assignment(sighting_id=sighting.id, identity_id=b.id, provenance="auto", actor="x"))
    with pytest.raises(IntegrityError):
        s.commit()
    s.rollback()
    assert crud.active_identity_of(s, sighting.id).id == a.id  # type: ignore[union-attr]
    # inactive history rows are not limited
    s.add(
        Assignment(
            sighting_id=sighting.id, identity_id=b.id, provenance="auto", actor="x", active=False
        )
    )
    s.commit()


def test_assignments_check_their_inputs(s: Session) -> None:
    sighting = _sighting(s, _media(s))
    kept, absorbed = crud.create_identity(s), crud.create_identity(s, label="dup")
    absorbed.merged_into_id = kept.id
    s.flush()
    with pytest.raises(InvalidValueError, match=f"merged into {kept.id}"):
        crud.assign(s, sighting.id, absorbed.id, "analyst", "ann")
    with pytest.raises(InvalidValueError, match="provenance"):
        crud.assign(s, sighting.id, kept.id, "guess", "ann")
    with pytest.raises(NotFoundError, match="sightings"):
        crud.assign(s, 10**9, kept.id, "auto", "matcher")
    with pytest.raises(NotFoundError, match="identities"):
        crud.assign(s, sighting.id, 10**6, "auto", "matcher")
    # a dataset label resolves to the identity it was merged into
    assert crud.get_or_create_labelled_identity(s, "dup").id == kept.id
    fresh = crud.get_or_create_labelled_identity(s, "0042")
    assert crud.get_or_create_labelled_identity(s, "0042").id == fresh.id


def test_reviews_and_audit_events_are_recorded(s: Session) -> None:
    sighting = _sighting(s, _media(s))
    person = crud.create_identity(s)
    d = crud.record_decision(
        s, sighting_id=sighting.id, identity_id=person.id, decision="reject", actor="ann"
    )
    q = crud.record_decision(
        s, sighting_id=sighting.id, query_key="q:1", decision="confirm", actor="ann"
    )
    with pytest.raises(InvalidValueError, match="identity_id or a query_key"):
        crud.record_decision(s, sighting_id=sighting.id, decision="reject", actor="ann")
    with pytest.raises(InvalidValueError, match="confirm, reject"):
        crud.record_decision(s, sighting_id=sighting.id, query_key="q", decision="maybe", actor="a")
    ev = crud.record_audit(
        s, actor="ann", action="merge", entity="identity", entity_id=7, details={"from": [8, 9]}
    )
    with pytest.raises(InvalidValueError, match="JSON"):
        crud.record_audit(s, actor="ann", action="x", entity="y", details={"bad": object()})
    s.commit()
    s.expire_all()
    assert (d.decision, q.decision) == ("reject", "confirm")
    assert (ev.entity_id, ev.details) == ("7", {"from": [8, 9]})


def test_job_progress_status_and_failures(s: Session) -> None:
    job = crud.create_job(s, kind="folder", source="/data/cam1", total=3, created_by="ann")
    assert (job.status, job.started_at) == (JobStatus.QUEUED, None)
    crud.update_job_progress(s, job.id, status="running")
    crud.update_job_progress(s, job.id, processed_delta=1)
    crud.update_job_progress(s, job.id, processed_delta=1, failed_delta=1)
    crud.add_job_failure(s, job.id, "b.mp4", "MediaDecodeError: truncated")
    with pytest.raises(InvalidValueError, match="non-negative"):
        crud.update_job_progress(s, job.id, processed_delta=-1)
    crud.update_job_progress(s, job.id, processed_delta=1, status="done")
    s.commit()
    s.expire_all()

    assert (job.processed, job.failed, job.total, job.status) == (3, 1, 3, "done")
    assert job.started_at is not None and job.finished_at is not None
    assert job.finished_at >= job.started_at
    assert [(f.item, f.reason) for f in job.failures] == [("b.mp4", "MediaDecodeError: truncated")]
    with pytest.raises(InvalidValueError, match="from done to running"):
        crud.update_job_progress(s, job.id, status="running")
    with pytest.raises(NotFoundError):
        crud.add_job_failure(s, 404, "x", "y")

    s.delete(job)
    s.commit()
    assert s.scalar(sa.select(sa.func.count()).select_from(JobFailure)) == 0


def test_concurrent_workers_never_lose_a_progress_increment(
    s: Session, sessions: sessionmaker[Session]
) -> None:
    job = crud.create_job(s, kind="files", total=40)
    s.commit()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(20):
                with session_scope(sessions) as w:
                    crud.update_job_progress(w, job.id, processed_delta=1)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    s.expire_all()
    assert job.processed == 40


def test_encoder_versions_register_once_and_one_is_active(s: Session) -> None:
    v1 = crud.register_encoder_version(s, "aio-1", "minilm-l6", "sha:1", 384)
    assert crud.register_encoder_version(s, "aio-1", "minilm-l6", "sha:1", 384).id == v1.id
    with pytest.raises(AlreadyExistsError, match="aio-1"):
        crud.register_encoder_version(s, "aio-1", "vit-b16", "sha:2", 512)
    with pytest.raises(InvalidValueError, match="dim"):
        crud.register_encoder_version(s, "aio-2", "x", None, 0)
    v2 = crud.register_encoder_version(s, "aio-2", "vit-b16", None, 512)
    crud.activate_encoder_version(s, "aio-1")
    crud.activate_encoder_version(s, "aio-2")
    s.commit()
    s.expire_all()
    assert (v1.is_active, v2.is_active) == (False, True)
    v1.is_active = True  # bypassing the helper: the database refuses a second active version
    with pytest.raises(IntegrityError):
        s.commit()
    s.rollback()
    with pytest.raises(NotFoundError):
        crud.activate_encoder_version(s, "nope")
    assert s.scalar(sa.select(EncoderVersion.version).where(EncoderVersion.is_active)) == "aio-2"


def test_index_generations_go_live_one_at_a_time(s: Session) -> None:
    enc = crud.register_encoder_version(s, "aio-1", "minilm-l6", None, 384)
    old = crud.create_generation(s, encoder_version_id=enc.id, collection="aioreid-1")
    crud.set_generation_status(s, old.id, "live", points=10)
    new = crud.create_generation(s, encoder_version_id=enc.id, collection="aioreid-2")
    with pytest.raises(AlreadyExistsError, match="aioreid-2"):
        crud.create_generation(s, encoder_version_id=enc.id, collection="aioreid-2")
    crud.set_generation_status(s, new.id, "building", points=5, cursor={"after": 5})
    crud.set_generation_status(s, new.id, "live", points=12, cursor=None)
    s.commit()
    s.expire_all()

    assert (old.status, new.status) == (GenerationStatus.RETIRED, GenerationStatus.LIVE)
    assert (new.points, new.cursor, new.live_at is not None) == (12, None, True)
    assert crud.live_generation(s).id == new.id  # type: ignore[union-attr]
    with pytest.raises(InvalidValueError, match="from live to building"):
        crud.set_generation_status(s, new.id, "building")
    crud.set_generation_status(s, old.id, "live")  # roll back to the previous generation
    s.commit()
    s.expire_all()
    assert (old.status, new.status) == ("live", "retired")


def test_api_keys_store_only_a_hash_and_verify(s: Session) -> None:
    plain, row = crud.create_api_key(s, "ci")
    s.commit()
    stored = s.execute(sa.select(ApiKey.__table__)).one()
    assert plain not in [str(v) for v in stored]
    assert row.key_hash == hashlib.sha256(plain.encode()).hexdigest()
    assert row.prefix == plain[:8] and len(plain) > 40

    assert row.last_used_at is None
    assert crud.verify_api_key(s, plain).id == row.id  # type: ignore[union-attr]
    assert row.last_used_at is not None
    assert crud.verify_api_key(s, plain + "x") is None
    assert crud.verify_api_key(s, "") is None
    assert crud.verify_api_key(s, None) is None

    crud.revoke_api_key(s, row.id)
    assert crud.verify_api_key(s, plain) is None
    other, _ = crud.create_api_key(s, "boot", plaintext="bootstrap-key-0123456789")
    assert crud.verify_api_key(s, other) is not None
    crud.revoke_api_key(s, crud.verify_api_key(s, other).id)  # type: ignore[union-attr]
    with pytest.raises(AlreadyExistsError, match="revoked"):  # a revoked key stays revoked
        crud.create_api_key(s, "again", plaintext="bootstrap-key-0123456789")
    assert crud.verify_api_key(s, other) is None
    with pytest.raises(InvalidValueError, match="16"):
        crud.create_api_key(s, "short", plaintext="abc")
    s.commit()


def test_api_keys_have_roles_unique_names_and_rotate_in_place(s: Session) -> None:
    plain, row = crud.create_api_key(s, "ann")
    assert row.role == KeyRole.ANALYST  # the least role unless asked
    _, boss = crud.create_api_key(s, "boss", role="admin")
    assert boss.role == KeyRole.ADMIN and KeyRole.ADMIN.allows("operator")
    assert not KeyRole.ANALYST.allows(KeyRole.OPERATOR)
    with pytest.raises(AlreadyExistsError, match="named 'ann'") as taken:
        crud.create_api_key(s, "ann", role="admin")
    assert taken.value.existing_id == row.id
    with pytest.raises(InvalidValueError, match="role must be one of analyst, operator, admin"):
        crud.create_api_key(s, "root", role="root")
    for bad in ("123", " ann", "a\tb", ""):
        with pytest.raises(InvalidValueError):
            crud.create_api_key(s, bad)

    new = crud.rotate_api_key(s, row.id)
    assert new != plain and crud.verify_api_key(s, plain) is None
    again = crud.verify_api_key(s, new)
    assert again is not None and (again.id, again.name, again.role) == (row.id, "ann", "analyst")
    assert row.rotated_at is not None and row.prefix == new[:8]
    crud.revoke_api_key(s, row.id)
    with pytest.raises(InvalidValueError, match="revoked"):
        crud.rotate_api_key(s, row.id)

    ev = crud.record_audit(s, actor="boss", action="revoke", entity="api_key", key_id=boss.id)
    assert ev.key_id == boss.id
    with pytest.raises(InvalidValueError, match="key_id"):
        crud.record_audit(s, actor="a", action="b", entity="c", key_id="1")  # type: ignore[arg-type]
    s.commit()


def test_session_scope_commits_or_rolls_back(s: Session, sessions: sessionmaker[Session]) -> None:
    with session_scope(sessions) as w:
        crud.get_or_create_camera(w, "kept")
    with pytest.raises(RuntimeError), session_scope(sessions) as w:
        crud.get_or_create_camera(w, "dropped")
        raise RuntimeError("boom")
    assert s.scalars(sa.select(Camera.name)).all() == ["kept"]


def test_sqlite_engine_enforces_foreign_keys_and_creates_its_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}"
    init_database(url)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        with pytest.raises(IntegrityError), session_scope(session_factory(engine)) as w:
            w.add(
                Sighting(
                    media_id=12345,
                    box_x=0,
                    box_y=0,
                    box_w=1,
                    box_h=1,
                    object_key="k",
                    modality="rgb",
                    point_id="p",
                )
            )
    finally:
        engine.dispose()
