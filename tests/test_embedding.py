"""Embedding in a host application that is already on SQLAlchemy (and Alembic)."""

import textwrap

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Integer, String, create_engine, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import vfs_orm
from vfs_orm import VFS, VFSError


class HostBase(DeclarativeBase):
    pass


class User(HostBase):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


def exclude_vfs(name, type_, parent_names):
    """What the README tells hosts to put in their env.py."""
    return not (type_ == "table" and name and name.startswith("vfs_"))


HOST_ENV = textwrap.dedent('''
    from alembic import context
    from sqlalchemy import engine_from_config, pool
    import test_embedding as host

    config = context.config
    connectable = engine_from_config(config.get_section(config.config_ini_section),
                                     prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as connection:
        context.configure(connection=connection, target_metadata=host.HostBase.metadata,
                          include_name=host.exclude_vfs)
        with context.begin_transaction():
            context.run_migrations()
''')

HOST_REV = textwrap.dedent('''
    from alembic import op
    import sqlalchemy as sa
    revision = "h001"
    down_revision = None
    branch_labels = None
    depends_on = None

    def upgrade():
        op.create_table("users", sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("name", sa.String(50), nullable=False))

    def downgrade():
        op.drop_table("users")
''')


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A host application's database with its own Alembic history at h001."""
    import sys
    from pathlib import Path
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    scripts = tmp_path / "host_migrations"
    (scripts / "versions").mkdir(parents=True)
    (scripts / "env.py").write_text(HOST_ENV)
    (scripts / "versions" / "h001_users.py").write_text(HOST_REV)
    (scripts / "script.py.mako").write_text("")
    db = tmp_path / "host.db"
    cfg = Config()
    cfg.set_main_option("script_location", str(scripts))
    cfg.set_main_option("sqlalchemy.url", f"sqlite:///{db}")
    command.upgrade(cfg, "head")
    engine = create_engine(f"sqlite:///{db}")
    vfs_orm.install_transaction_fix(engine)
    yield engine, cfg, db
    engine.dispose()
    sys.modules.pop("test_embedding", None)


def test_plain_host_engine_works_with_real_transactions(tmp_path):
    # pysqlite's defaults (legacy transaction mode), as a host application creates them:
    # vfs_orm runs its own transactions on the connections it checks out.
    engine = create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
    with VFS(engine=engine) as fs:
        fs.write_text("/ok", "plain engine")
        assert fs.read_text("/ok") == "plain engine"
        with pytest.raises(RuntimeError):
            with fs.atomic_batch():
                fs.write_text("/a", "1")
                with pytest.raises(RuntimeError):
                    with fs.atomic_batch():  # a savepoint, rolled back alone
                        fs.write_text("/b", "2")
                        raise RuntimeError
                assert fs.exists("/a") and not fs.exists("/b")
                raise RuntimeError
        assert not fs.exists("/a") and not fs.exists("/b")
    with engine.connect() as conn:  # the host's connections keep their own mode
        assert conn.connection.driver_connection.isolation_level == ""
        conn.execute(text("INSERT INTO notes (body) VALUES ('host')"))
        conn.commit()
    with VFS(engine=engine, read_only=True) as fs:
        assert fs.read_text("/ok") == "plain engine"
    engine.dispose()


def test_plain_host_session_joins_and_rolls_back(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    vfs_orm.upgrade_engine(engine)
    with Session(engine) as s:
        fs = VFS(session=s)
        fs.write_text("/save/a.json", "{}")
        with fs.atomic_batch():  # a savepoint: must not commit on its own
            fs.write_text("/save/b.json", "{}")
        s.rollback()
        assert not fs.exists("/save/a.json") and not fs.exists("/save/b.json")
        fs.write_text("/save/c.json", "kept")
        s.commit()
        fs.close()
    with VFS(engine=engine) as fs:
        assert fs.listdir("/save") == ["c.json"]
    engine.dispose()


def test_tables_beside_the_host_and_its_alembic_history_untouched(host):
    engine, cfg, _db = host
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users(name) VALUES ('rei')"))
        app_id = conn.exec_driver_sql("PRAGMA application_id").scalar()
    with VFS(engine=engine) as fs:
        fs.write_text("/saves/slot1.json", '{"hp": 3}')
        assert fs.read_text("/saves/slot1.json") == '{"hp": 3}'
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "h001"
        assert conn.execute(text("SELECT name FROM users")).scalars().all() == ["rei"]
        assert conn.execute(text("SELECT version_num FROM vfs_alembic_version")).scalar() == \
            vfs_orm.backends.SQLITE.head_revision()
        assert conn.exec_driver_sql("PRAGMA application_id").scalar() == app_id
        # the host's autogenerate, with the README's include_name, sees no drift at all
        ctx = MigrationContext.configure(conn, opts={"include_name": exclude_vfs})
        assert compare_metadata(ctx, HostBase.metadata) == []
    command.check(cfg)  # the host's own `alembic check` passes beside our tables
    with VFS(engine=engine) as fs:  # reopening: no DDL, the data is there
        assert fs.listdir("/saves") == ["slot1.json"]


def test_write_commits_and_rolls_back_with_the_host_session(host):
    engine, _, _ = host
    vfs_orm.upgrade_engine(engine)
    with Session(engine) as s:
        s.add(User(name="asuka"))
        fs = VFS(session=s)
        fs.write_text("/save/player.json", '{"name": "asuka"}')
        with fs.atomic_batch():
            fs.write_text("/save/world.json", "{}")
        assert fs.read_text("/save/player.json") == '{"name": "asuka"}'
        s.rollback()
        assert not fs.exists("/save/player.json")
        s.add(User(name="shinji"))
        fs.write_text("/save/player.json", '{"name": "shinji"}')
        s.commit()
        fs.close()
    with Session(engine) as s:
        assert s.scalars(select(User.name)).all() == ["shinji"]
    with VFS(engine=engine) as fs:
        assert fs.read_text("/save/player.json") == '{"name": "shinji"}'
        assert not fs.exists("/save/world.json")


def test_host_connections_with_foreign_keys_off_leave_no_orphan_chunks(host):
    engine, _, _ = host
    with VFS(engine=engine) as fs:
        raw = fs._uow.raw()
        raw.execute("PRAGMA foreign_keys=OFF")
        fs.write_bytes("/a/big.bin", b"x" * 300_000)
        fs.write_bytes("/a/b/c.bin", b"y" * 100)
        fs.remove("/a/big.bin")
        fs.rmtree("/a")
        assert raw.execute("SELECT count(*) FROM vfs_chunks").fetchone()[0] == 0


def test_layers_are_refused_when_embedded(host):
    engine, _, _ = host
    with VFS(engine=engine) as fs, VFS() as other:
        with pytest.raises(VFSError):
            fs.add_underlay(other)
