"""A real PostgreSQL server for tests (Debian's, which `make setup` installs): a cluster made by initdb in a
temporary folder, listening on loopback only, password (SCRAM) authentication, one role and database for
Podium. Run as the ``postgres`` user when the tests run as root (PostgreSQL refuses root)."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .serverproc import free_port


def pg_bin(name: str) -> str:
    """A PostgreSQL program: Debian keeps the server's in /usr/lib/postgresql/<major>/bin."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    path = found[-1] if found else shutil.which(name)
    assert path, f"PostgreSQL's {name} is missing: `make setup` installs Debian's postgresql package"
    return path


@dataclass
class Postgres:
    """A running cluster: its superuser ``postgres`` and Podium's role ``podium`` (no superuser)."""

    folder: Path
    port: int
    superuser_password: str
    password: str
    proc: subprocess.Popen[bytes]

    def url(self, database: str = "podium", driver: str = "asyncpg", *, superuser: bool = False) -> str:
        """A database's SQLAlchemy URL as Podium's role (``driver=""``: libpq's form, for psql)."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        who = f"postgres:{self.superuser_password}" if superuser else f"podium:{self.password}"
        return f"{scheme}://{who}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "podium", *, superuser: bool = False) -> str:
        """Run SQL; what psql printed (unaligned, tuples only)."""
        url = self.url(database, "", superuser=superuser)
        done = subprocess.run(
            [pg_bin("psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def create_database(self, name: str) -> str:
        """A new empty database owned by Podium's role; its URL."""
        self.psql(f'CREATE DATABASE "{name}" OWNER podium', "postgres", superuser=True)
        return self.url(name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: PostgreSQL's smart shutdown
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres() -> Postgres:
    """A fresh cluster with the role ``podium`` and its database ``podium``; answers when returned."""
    folder = Path(tempfile.mkdtemp(prefix="podium-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    superpass, password = secrets.token_hex(16), secrets.token_hex(16)
    pwfile = folder / "pw"
    pwfile.write_text(superpass + "\n")
    if as_user:
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    data = folder / "data"
    done = subprocess.run(
        [
            *as_user,
            pg_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    pwfile.unlink()
    port = free_port()
    log = (folder / "postgres.log").open("wb")
    argv = [
        *as_user,
        pg_bin("postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-h",
        "127.0.0.1",
        "-k",
        str(folder),
        "-c",
        "fsync=off",
        "-c",
        "logging_collector=off",
    ]
    with log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log)
    server = Postgres(folder, port, superpass, password, proc)
    deadline = time.monotonic() + 30
    while True:
        ready = subprocess.run(
            [pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True, check=False
        )
        if ready.returncode == 0:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"PostgreSQL did not start: {(folder / 'postgres.log').read_text()}")
        time.sleep(0.1)
    server.psql(f"CREATE ROLE podium LOGIN PASSWORD '{password}'", "postgres", superuser=True)
    server.create_database("podium")
    return server
