"""Alembic migrations of the metadata database, on Postgres and on SQLite (embedded profile)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import sqlalchemy as sa
from pg import require_postgres, temporary_postgres_database

from aioreid.platform.db import migrate
from aioreid.platform.db.engine import make_engine
from aioreid.platform.db.errors import SchemaMismatchError, UnmanagedDatabaseError
from aioreid.platform.db.models import Base

ROOT = Path(__file__).resolve().parents[1]
TABLES = set(Base.metadata.tables)


@pytest.fixture(params=["sqlite", "postgres"])
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes URLs of empty databases of one backend (dropped or deleted afterwards)."""
    if request.param == "postgres":
        require_postgres()
    with ExitStack() as stack:

        def make() -> str:
            if request.param == "postgres":
                return stack.enter_context(temporary_postgres_database())
            return f"sqlite:///{tmp_path / secrets.token_hex(4) / 'aioreid.db'}"

        yield make


def _run(url: str, sql: str) -> list[tuple]:
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            result = conn.exec_driver_sql(sql)
            return [tuple(r) for r in result] if result.returns_rows else []
    finally:
        engine.dispose()


def _where(index: dict) -> str:
    opts = index.get("dialect_options", {})
    return " ".join(str(v) for k, v in sorted(opts.items()) if k.endswith("_where"))


def _schema(url: str) -> dict[str, dict]:
    """Everything a table is made of, as comparable data (alembic_version left out)."""
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        ins = sa.inspect(engine)
        out = {}
        for t in ins.get_table_names():
            if t == "alembic_version":
                continue
            cols = {
                c["name"]: (str(c["type"]), c["nullable"], str(c.get("default")))
                for c in ins.get_columns(t)
            }
            fks = {
                (fk["name"], *fk["constrained_columns"], fk["options"].get("ondelete"))
                for fk in ins.get_foreign_keys(t)
            }
            indexes = {
                (i["name"], *i["column_names"], bool(i["unique"]), _where(i))
                for i in ins.get_indexes(t)
            }
            out[t] = {
                "columns": cols,
                "pk": ins.get_pk_constraint(t)["name"],
                "fks": fks,
                "uniques": {(u["name"], *u["column_names"]) for u in ins.get_unique_constraints(t)},
                "checks": {(c["name"], c["sqltext"]) for c in ins.get_check_constraints(t)},
                "indexes": indexes,
            }
        return out
    finally:
        engine.dispose()


def test_upgrade_builds_exactly_what_the_models_declare(new_url: Callable[[], str]) -> None:
    """Beyond `alembic check`: CHECK constraints, ON DELETE rules, partial indexes, defaults."""
    migrated, created = new_url(), new_url()
    migrate.upgrade(migrated)
    engine = make_engine(created)
    Base.metadata.create_all(engine)
    engine.dispose()

    assert migrate.current(migrated) == migrate.head_revision() == "0004"
    got, want = _schema(migrated), _schema(created)
    assert set(got) == TABLES
    for table in sorted(TABLES):
        assert got[table] == want[table], table
    one_active = [i for i in got["assignments"]["indexes"] if i[0] == "uq_assignments_one_active"]
    assert [i[:3] for i in one_active] == [("uq_assignments_one_active", "sighting_id", True)]
    assert "active" in one_active[0][3]  # partial: only active rows are unique


def test_downgrade_to_base_removes_every_table_and_upgrade_works_again(
    new_url: Callable[[], str],
) -> None:
    url = new_url()
    migrate.upgrade(url)
    migrate.downgrade(url, "base")
    assert migrate.current(url) is None
    assert _schema(url) == {}

    migrate.upgrade(url)
    assert set(_schema(url)) == TABLES
    _run(url, "INSERT INTO cameras (name) VALUES ('gate')")
    assert _run(url, "SELECT name, modality FROM cameras") == [("gate", "rgb")]


def test_check_passes_when_models_and_migrations_agree(new_url: Callable[[], str]) -> None:
    url = new_url()
    migrate.init_database(url)
    migrate.check(url)  # raises on any difference


def test_check_fails_when_a_model_changes_without_a_revision(new_url: Callable[[], str]) -> None:
    url = new_url()
    migrate.upgrade(url)
    changed = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(changed)
    changed.tables["identities"].append_column(sa.Column("height_cm", sa.Integer()))
    with pytest.raises(SchemaMismatchError, match="height_cm"):
        migrate.check(url, metadata=changed)


def test_check_fails_when_the_database_was_edited_by_hand(new_url: Callable[[], str]) -> None:
    url = new_url()
    migrate.upgrade(url)
    _run(url, "ALTER TABLE cameras ADD COLUMN rogue INTEGER")
    with pytest.raises(SchemaMismatchError, match="rogue"):
        migrate.check(url)


def test_check_refuses_a_database_behind_the_migrations(new_url: Callable[[], str]) -> None:
    url = new_url()
    with pytest.raises(SchemaMismatchError, match="upgrade"):
        migrate.check(url)


def test_upgrade_refuses_tables_it_did_not_create_and_keeps_their_rows(
    new_url: Callable[[], str],
) -> None:
    url = new_url()
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    _run(url, "INSERT INTO cameras (name) VALUES ('kept')")

    with pytest.raises(UnmanagedDatabaseError, match="cameras"):
        migrate.init_database(url)
    assert _run(url, "SELECT name FROM cameras") == [("kept",)]
    assert migrate.current(url) is None


def test_embedded_start_up_creates_the_folder_and_is_repeatable(tmp_path: Path) -> None:
    db = tmp_path / "home" / "deep" / "aioreid.db"
    url = f"sqlite:///{db}"
    assert migrate.current(url) is None
    assert not db.exists()  # asking does not create the file

    assert migrate.init_database(url) == "0004"
    _run(url, "INSERT INTO cameras (name) VALUES ('lobby')")
    assert migrate.init_database(url) == "0004"  # second start-up: nothing to do
    assert _run(url, "SELECT name FROM cameras") == [("lobby",)]


def test_two_processes_migrating_postgres_at_once_both_succeed() -> None:
    require_postgres()
    code = (
        "import sys; from aioreid.platform.db.migrate import init_database\n"
        "print('ready', flush=True); sys.stdin.readline(); init_database(sys.argv[1])"
    )
    with temporary_postgres_database() as url:
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, url],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            for _ in range(2)
        ]
        for p in procs:  # both imported: now start them together
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        assert _run(url, "SELECT version_num FROM alembic_version") == [("0004",)]
        assert set(_schema(url)) == TABLES


def test_alembic_command_line_reads_the_url_from_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOREID_")}
    env["AIOREID_DATABASE__URL"] = url
    out = subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert migrate.current(url) == "0004"


def test_missing_migrations_folder_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        migrate.alembic_config("sqlite://")


def test_sightings_made_before_tracks_each_become_a_one_frame_track(
    new_url: Callable[[], str],
) -> None:
    url = new_url()
    migrate.upgrade(url, "0001_initial")
    _run(url, "INSERT INTO cameras (name) VALUES ('gate')")
    _run(
        url,
        "INSERT INTO media (sha256, kind, object_key, size_bytes, camera_id)"
        " VALUES ('ab', 'image', 'media/ab.jpg', 10, 1)",
    )
    for n in range(2):
        _run(
            url,
            "INSERT INTO sightings (media_id, camera_id, frame_index, box_x, box_y, box_w, box_h,"
            f" quality, object_key, modality, point_id) VALUES (1, 1, {n}, 0, 0, 8, 16, 0.5,"
            f" 'crops/{n}.jpg', 'ir', '00000000-0000-0000-0000-00000000000{n}')",
        )
    migrate.upgrade(url)
    tracks = _run(url, "SELECT id, media_id, camera_id, modality, frames FROM tracks ORDER BY id")
    assert [t[1:] for t in tracks] == [(1, 1, "ir", 1), (1, 1, "ir", 1)]
    owners = _run(url, "SELECT track_id FROM sightings ORDER BY id")
    assert owners == [(tracks[0][0],), (tracks[1][0],)]
    points = _run(url, "SELECT point_id FROM tracks")
    assert len({p for (p,) in points}) == 2  # their own ids, not the sightings'
    assert not {p for (p,) in points} & {f"00000000-0000-0000-0000-00000000000{n}" for n in (0, 1)}


def test_keys_made_before_roles_become_admins_with_unique_names(
    new_url: Callable[[], str],
) -> None:
    """0003: old keys keep every right (admin), shared names are split deterministically,
    audit events gain a key id; new keys default to the least role."""
    url = new_url()
    migrate.upgrade(url, "0002")
    for n, name in enumerate(["ann", "bootstrap", "ann", "ann-3", "ann"], start=1):
        _run(  # ids 1..5 in this order (a fresh database)
            url,
            f"INSERT INTO api_keys (name, prefix, key_hash) VALUES ('{name}', 'aio_{n}',"
            f" '{n:064d}')",
        )
    _run(url, "INSERT INTO audit_events (actor, action, entity) VALUES ('ann', 'merge', 'x')")
    migrate.upgrade(url)

    rows = _run(url, "SELECT id, name, role FROM api_keys ORDER BY id")
    # 3 would become ann-3, which key 4 holds: it gets ann-3-2; key 4 keeps its own name.
    assert rows == [
        (1, "ann", "admin"),
        (2, "bootstrap", "admin"),
        (3, "ann-3-2", "admin"),
        (4, "ann-3", "admin"),
        (5, "ann-5", "admin"),
    ]
    assert _run(url, "SELECT key_id FROM audit_events") == [(None,)]
    _run(url, "INSERT INTO api_keys (name, prefix, key_hash) VALUES ('new', 'aio_new', 'h')")
    assert _run(url, "SELECT role FROM api_keys WHERE name = 'new'") == [("analyst",)]
    with pytest.raises(sa.exc.IntegrityError):
        _run(url, "INSERT INTO api_keys (name, prefix, key_hash) VALUES ('ann', 'p', 'h2')")
    with pytest.raises(sa.exc.IntegrityError):
        _run(
            url,
            "INSERT INTO api_keys (name, role, prefix, key_hash) VALUES ('x', 'root', 'p', 'h3')",
        )
    _run(
        url, "INSERT INTO audit_events (actor, action, entity, key_id) VALUES ('ann', 'a', 'b', 1)"
    )
    with pytest.raises(sa.exc.IntegrityError):  # the key must exist
        _run(
            url,
            "INSERT INTO audit_events (actor, action, entity, key_id) VALUES ('a', 'b', 'c', 99)",
        )

    migrate.downgrade(url, "0002")
    assert _run(url, "SELECT id, name FROM api_keys WHERE id = 5") == [(5, "ann-5")]
    assert "role" not in {c["name"] for c in _columns(url, "api_keys")}
    migrate.upgrade(url)
    migrate.check(url)


def _columns(url: str, table: str) -> list[dict]:
    engine = make_engine(url, poolclass=sa.pool.NullPool)
    try:
        return sa.inspect(engine).get_columns(table)
    finally:
        engine.dispose()


def test_cases_positions_and_undone_decisions_arrive_without_touching_old_rows(
    new_url: Callable[[], str],
) -> None:
    """0004: cameras keep their rows (no position), the database itself refuses a half or
    out-of-range position and a query item with a ref; a downgrade removes it all again."""
    url = new_url()
    migrate.upgrade(url, "0003")
    _run(url, "INSERT INTO cameras (name) VALUES ('gate')")
    migrate.upgrade(url)

    assert _run(url, "SELECT name, latitude, longitude FROM cameras") == [("gate", None, None)]
    _run(url, "UPDATE cameras SET latitude = 52.5, longitude = 4.9")
    for bad in ("latitude = 95", "longitude = NULL"):
        with pytest.raises(sa.exc.IntegrityError):
            _run(url, f"UPDATE cameras SET {bad}")
    _run(url, "INSERT INTO cases (title, created_by) VALUES ('c', 'ann')")
    assert _run(url, "SELECT status FROM cases") == [("open",)]
    _run(
        url, "INSERT INTO case_items (case_id, kind, ref_id, pinned_by) VALUES (1, 'track', 5, 'a')"
    )
    with pytest.raises(sa.exc.IntegrityError):  # a query item names no ref
        _run(
            url,
            "INSERT INTO case_items (case_id, kind, ref_id, pinned_by) VALUES (1, 'query', 5, 'a')",
        )
    with pytest.raises(sa.exc.IntegrityError):  # the same track twice in one case
        _run(
            url,
            "INSERT INTO case_items (case_id, kind, ref_id, pinned_by) VALUES (1, 'track', 5, 'b')",
        )

    migrate.downgrade(url, "0003")
    assert not {"cases", "case_items"} & set(_schema(url))
    assert "latitude" not in {c["name"] for c in _columns(url, "cameras")}
    migrate.upgrade(url)
    migrate.check(url)
