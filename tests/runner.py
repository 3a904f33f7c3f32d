"""Run pghistory's tests against every supported PostgreSQL.

    python -m tests.runner                     # PostgreSQL 15, 16 and 18: make, regress, pytest
    python -m tests.runner --pg 16             # one version
    python -m tests.runner --only regress      # only the pg_regress suite (tests/sql)
    python -m tests.runner --only pytest -k x  # only pytest; unknown options go to pytest
    python -m tests.runner --pg 15 -- -x tests/python/test_smoke.py

(from the repository root: tests/ is a package; tests/run calls it so.)

For each version a throwaway server is started (tests/pgserver.py) with this checkout's
extension files installed, then:

  make     `make install DESTDIR=<tmp>` with that version's pg_config installs exactly the files
           in extension/ (skipped when make or pgxs is missing)
  regress  pg_regress runs every tests/sql/*.sql in name order (the Makefile's REGRESS rule) and
           compares with tests/expected/NAME.out (or NAME_1.out...); results and regression.diffs
           are kept in tests/results/pg<N>/
  pytest   pytest tests/python, told which server to use through PGHISTORY_TEST_DSN,
           PGHISTORY_TEST_PG_VERSION and PGHISTORY_TEST_PG_BINDIR (see tests/conftest.py)

Before any version: `make check-generated` fails the run when a committed generated script
(extension/pghistory--<default>.sql, its upgrade script) is stale against extension/src.

The exit status is non-zero when any step of any version failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests import pgserver

REPO_ROOT = pgserver.REPO_ROOT
TESTS_DIR = REPO_ROOT / "tests"
STEPS = ("make", "regress", "pytest")
REGRESS_DB = "contrib_regression"  # what `make installcheck` uses

PASS, FAIL, SKIP = "ok", "FAILED", "skipped"


def say(msg: str = "") -> None:
    print(msg, flush=True)


def regress_tests() -> list[str]:
    """Every tests/sql/*.sql by name, as the Makefile's REGRESS lists them."""
    return sorted(p.stem for p in (TESTS_DIR / "sql").glob("*.sql"))


# --------------------------------------------------------------------------------------
# Steps: each returns (status, note)
# --------------------------------------------------------------------------------------


def step_make(server: pgserver.PgServer) -> tuple[str, str]:
    inst = server.installation
    make = shutil.which("make")
    if make is None:
        return SKIP, "make not installed"
    if inst.pgxs is None:
        return SKIP, f"no pgxs in {inst.bindir.parent}"
    with tempfile.TemporaryDirectory(prefix="pghistory-make-") as dest:
        cmd = [
            make,
            "-s",
            "-C",
            str(REPO_ROOT),
            "install",
            f"DESTDIR={dest}",
            f"PG_CONFIG={inst.pg_config}",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            say(result.stdout + result.stderr)
            return FAIL, "make install failed"
        ext_dir = Path(dest + str(inst.extension_dir))
        got = sorted(p.name for p in ext_dir.iterdir()) if ext_dir.is_dir() else []
        want = sorted(p.name for p in pgserver.extension_files())
        if got != want:
            say(f"make install put {got} into {inst.extension_dir}, expected {want}")
            return FAIL, "make install installed the wrong files"
    return PASS, f"{len(want)} files"


def step_regress(server: pgserver.PgServer) -> tuple[str, str]:
    tests = regress_tests()
    if not tests:
        return SKIP, "no tests/sql/*.sql"
    pg_regress = pgserver.find_pg_regress(server.version)
    outdir = TESTS_DIR / "results" / f"pg{server.version}"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir(parents=True)
    cmd = [
        str(pg_regress),
        f"--inputdir={TESTS_DIR}",
        f"--outputdir={outdir}",
        f"--bindir={server.bindir}",  # psql of the version under test
        f"--host={server.host}",
        f"--port={server.port}",
        f"--user={server.user}",
        f"--dbname={REGRESS_DB}",  # created (dropped first if present) by pg_regress itself
        *tests,
    ]
    say(f"$ {pg_regress} ... {len(tests)} tests")
    result = subprocess.run(cmd, cwd=str(outdir), check=False)
    if result.returncode != 0:
        diffs = outdir / "regression.diffs"
        if diffs.exists() and diffs.stat().st_size:
            say(f"---- {diffs} ----")
            say(diffs.read_text(errors="replace"))
            say(f"---- end of {diffs} ----")
        return FAIL, f"see {diffs.relative_to(REPO_ROOT)}"
    return PASS, f"{len(tests)} tests"


def _has_path_arg(args: list[str]) -> bool:
    for arg in args:
        if arg.startswith("-"):
            continue
        if (REPO_ROOT / arg.split("::")[0]).exists() or Path(arg.split("::")[0]).exists():
            return True
    return False


def pytest_env(server: pgserver.PgServer) -> dict[str, str]:
    return {
        "PGHISTORY_TEST_DSN": server.dsn("postgres"),
        "PGHISTORY_TEST_PG_VERSION": str(server.version),
        "PGHISTORY_TEST_PG_BINDIR": str(server.bindir),
        "PGHISTORY_TEST_PG_SHAREDIR": str(server.installation.sharedir),
    }


def step_pytest(server: pgserver.PgServer, pytest_args: list[str]) -> tuple[str, str]:
    targets = [] if _has_path_arg(pytest_args) else ["tests/python"]
    cmd = [sys.executable, "-m", "pytest", *targets, *pytest_args]
    env = dict(os.environ, **pytest_env(server))
    say(f"$ {' '.join(['pytest', *targets, *pytest_args])}")
    result = subprocess.run(cmd, cwd=str(REPO_ROOT), env=env, check=False)
    if result.returncode == 5:  # pytest: no tests collected
        return SKIP, "no tests collected"
    if result.returncode != 0:
        return FAIL, f"pytest exit status {result.returncode}"
    return PASS, ""


def check_generated() -> tuple[str, str]:
    """Whether the committed scripts are what `make build` makes of extension/src."""
    make = shutil.which("make")
    if make is None:
        return SKIP, "make not installed"
    cmd = [make, "-s", "-C", str(REPO_ROOT), "check-generated", f"PYTHON={sys.executable}"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        say(result.stdout + result.stderr)
        return FAIL, "stale generated SQL: run make build"
    return PASS, "extension scripts match extension/src"


# --------------------------------------------------------------------------------------


def run_version(
    version: int, steps: list[str], pytest_args: list[str]
) -> list[tuple[str, str, str, float]]:
    """[(step, status, note, seconds)] for one PostgreSQL version."""
    rows: list[tuple[str, str, str, float]] = []
    say("")
    say(f"======== PostgreSQL {version} ========")
    t0 = time.monotonic()
    server: pgserver.PgServer | None = None
    try:
        server = pgserver.start(version)
    except pgserver.PgServerError as exc:
        say(f"could not start PostgreSQL {version}: {exc}")
        return [("server", FAIL, str(exc).splitlines()[0][:120], time.monotonic() - t0)]
    say(
        f"server {server.full_version} ({server.installation.origin}) "
        f"at {server.host}:{server.port}, bindir {server.bindir}"
    )
    rows.append(("server", PASS, server.full_version, time.monotonic() - t0))
    try:
        for step in steps:
            say(f"-------- PostgreSQL {version}: {step} --------")
            t = time.monotonic()
            try:
                if step == "make":
                    status, note = step_make(server)
                elif step == "regress":
                    status, note = step_regress(server)
                else:
                    status, note = step_pytest(server, pytest_args)
            except pgserver.PgServerError as exc:
                status, note = FAIL, str(exc)
            rows.append((step, status, note, time.monotonic() - t))
    finally:
        server.stop()
    return rows


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m tests.runner",
        description="Run pghistory's tests (make install check, pg_regress, pytest) "
        "on PostgreSQL 15, 16 and 18.",
        epilog="Other arguments (and everything after --) are passed to pytest.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get("PGHISTORY_TEST_PG_VERSIONS", ""),
        help="comma-separated major versions (default: 15,16,18)",
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated steps among make, regress, pytest (default: all)",
    )
    if "--" in argv:
        i = argv.index("--")
        args, extra = parser.parse_known_args(argv[:i])
        extra += argv[i + 1 :]
    else:
        args, extra = parser.parse_known_args(argv)
    return args, extra


def main(argv: list[str] | None = None) -> int:
    args, pytest_args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        versions = [int(v) for v in args.pg.split(",") if v.strip()] or list(
            pgserver.SUPPORTED_VERSIONS
        )
    except ValueError:
        say(f"runner: --pg takes major versions like 15,16,18, not {args.pg!r}")
        return 2
    steps = [s.strip() for s in args.only.split(",") if s.strip()] or list(STEPS)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        say(f"runner: unknown step(s) {', '.join(unknown)}; choose among {', '.join(STEPS)}")
        return 2
    steps = [s for s in STEPS if s in steps]

    started = time.monotonic()
    say("-------- generated SQL --------")
    generated = check_generated()
    say(f"{generated[0]}: {generated[1]}")
    results: dict[int, list[tuple[str, str, str, float]]] = {}
    for version in versions:
        results[version] = run_version(version, steps, pytest_args)

    say("")
    say("======== summary ========")
    failed = False
    setup_failed = os.environ.get("PGHISTORY_SETUP_FAILED")
    if setup_failed:  # set by tests/run when installing something failed
        failed = True
        say(f"setup                {FAIL:<8}          {setup_failed}")
    failed = failed or generated[0] == FAIL
    say(f"generated            {generated[0]:<8}          {generated[1]}")
    for version, rows in results.items():
        for step, status, note, seconds in rows:
            failed = failed or status == FAIL
            say(f"PostgreSQL {version:<3} {step:<8} {status:<8} {seconds:6.1f}s  {note}")
    say(f"total {time.monotonic() - started:.1f}s: {'FAILED' if failed else 'all passed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
