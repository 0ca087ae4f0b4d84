"""Shared fixtures: the C unit-test collector, loopback families, leak checks.

The C tests under tests/c/ are compiled here with the project's own flags
(tools/build_flags.py, sanitizers included when REPYNET_SANITIZE is set),
one binary per tests/c/test_*.c, and each RN_TEST becomes one pytest item.
"""

import gc
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
C_TESTS = Path(__file__).resolve().parent / "c"
CSRC = ROOT / "csrc"

sys.path.insert(0, str(ROOT / "tools"))
import build_flags  # noqa: E402

sys.path.remove(str(ROOT / "tools"))


# --- C unit tests -----------------------------------------------------------


def _core_sources():
    # Core files never include Python.h (the layer rule), so they link alone.
    return sorted(CSRC.glob("rn_*.c"))


def _digest(paths, flags):
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    digest.update(" ".join(flags).encode())
    return digest.hexdigest()[:16]


def _compile(cmd, cwd=None):
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    if result.returncode != 0:
        raise CTestBuildError(f"{' '.join(cmd)}\n{result.stderr}")


def _shared_objects(cc, flags, headers, out_dir):
    # The core and the shared test support (every rn_test_*.c: the runner,
    # the fakes, the recorders) are compiled once for every test file.
    sources = [*sorted(C_TESTS.glob("rn_test_*.c")), *_core_sources()]
    objects = out_dir / f"shared-{_digest(sources + headers, flags)}"
    if not objects.exists():
        partial = Path(tempfile.mkdtemp(prefix="shared-partial-", dir=out_dir))
        try:
            _compile([cc, *flags, "-g", f"-I{CSRC}", f"-I{C_TESTS}", "-c",
                      *map(str, sources)], cwd=partial)
            partial.rename(objects)
        except OSError:
            if not objects.exists():
                raise
            # Another run renamed the same objects into place first.
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return objects


def _build_c_test(test_file):
    headers = sorted(CSRC.glob("rn*.h")) + sorted(C_TESTS.glob("*.h"))
    flags = build_flags.compile_args()
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    out_dir = Path(tempfile.gettempdir()) / "repynet-ctests"
    out_dir.mkdir(exist_ok=True)
    objects = _shared_objects(cc, flags, headers, out_dir)
    digest = _digest([test_file, *headers], [*flags, objects.name])
    binary = out_dir / f"{test_file.stem}-{digest}"
    if not binary.exists():
        partial = binary.with_suffix(".partial")
        _compile([cc, *flags, "-g", f"-I{CSRC}", f"-I{C_TESTS}", str(test_file),
                  *map(str, sorted(objects.glob("*.o"))), "-o", str(partial),
                  *build_flags.link_args()])
        partial.rename(binary)
    return binary


# RN_TEST_SKIPPED in tests/c/rn_test.h.
C_TEST_SKIPPED = 77
# Only stops a hung test from hanging the run; not a bound on its speed.
C_TEST_HANG_GUARD = 300


class CTestBuildError(Exception):
    pass


class CTestFile(pytest.File):
    def collect(self):
        binary = _build_c_test(Path(self.path))
        names = subprocess.run([str(binary), "--list"], capture_output=True, text=True,
                               check=True).stdout.split()
        for name in names:
            yield CTestItem.from_parent(self, name=name, binary=binary)


class CTestItem(pytest.Item):
    def __init__(self, *, binary, **kwargs):
        super().__init__(**kwargs)
        self.binary = binary

    def runtest(self):
        try:
            result = subprocess.run([str(self.binary), self.name], capture_output=True,
                                    text=True, timeout=C_TEST_HANG_GUARD)
        except subprocess.TimeoutExpired as expired:
            raise CTestFailure("hung", f"no result after {C_TEST_HANG_GUARD} s") from expired
        if result.returncode == C_TEST_SKIPPED:
            pytest.skip(result.stdout.strip().removeprefix("skipped: "))
        if result.returncode != 0:
            raise CTestFailure(result.returncode, result.stdout + result.stderr)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, CTestFailure):
            code, output = excinfo.value.args
            return f"C test {self.name} exited {code}:\n{output}"
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name}"


class CTestFailure(Exception):
    pass


def pytest_collect_file(parent, file_path):
    if file_path.parent == C_TESTS and file_path.name.startswith("test_") \
            and file_path.suffix == ".c":
        return CTestFile.from_parent(parent, path=file_path)
    return None


# --- child processes ----------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def children_import_this_repynet():
    """Every child process imports the repynet this process imported.

    From an installed wheel that is site-packages, not the source tree,
    which has no built extension unless an in-place build left one there.
    """
    import repynet

    saved = os.environ.get("PYTHONPATH")
    where = os.path.dirname(os.path.dirname(os.path.abspath(repynet.__file__)))
    os.environ["PYTHONPATH"] = where + (os.pathsep + saved if saved else "")
    yield
    if saved is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = saved


# --- loopback families --------------------------------------------------------


def _has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


HAS_IPV6 = _has_ipv6_loopback()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # The one place a test that needs ::1 is skipped: mark it needs_ipv6
    # (the family fixture's ::1 case carries the mark).
    if item.get_closest_marker("needs_ipv6") and not HAS_IPV6:
        pytest.skip("this host has no IPv6 loopback (::1 cannot be bound)")


@pytest.fixture(params=[pytest.param("127.0.0.1", id="ipv4"),
                        pytest.param("::1", id="ipv6", marks=pytest.mark.needs_ipv6)])
def family(request: pytest.FixtureRequest) -> str:
    """The loopback address of each family: 127.0.0.1, then ::1 (needs_ipv6)."""
    return request.param


# --- leak checks ------------------------------------------------------------


def _open_fds():
    return {int(name) for name in os.listdir("/proc/self/fd")}


def _by_design_fds(native):
    # The completion port's epoll fd and eventfd live for the process.
    port_fds = getattr(native, "_port_fds", None)
    return set(port_fds()) if port_fds else set()


@pytest.fixture(autouse=True)
def no_leaks(request):
    """Fail a test that leaves an fd or a live C object behind."""
    if "no_leak_check" in request.keywords:
        yield
        return
    from repynet import _repynet as native

    gc.collect()
    fds_before = _open_fds()
    live_before = native._live_objects()
    yield
    # Fixture values stay in funcargs until pytest's own teardown ends; the
    # fixtures have been finalized by now, so drop them before counting.
    funcargs = getattr(request.node, "funcargs", None)
    if funcargs:
        funcargs.clear()
    gc.collect()
    leaked_fds = _open_fds() - fds_before - _by_design_fds(native)
    live_after = native._live_objects()
    assert live_after == live_before, f"C objects leaked: {live_before} -> {live_after}"
    assert not leaked_fds, f"fds leaked: {sorted(leaked_fds)} " + ", ".join(
        _describe_fd(fd) for fd in sorted(leaked_fds))


def pytest_terminal_summary(terminalreporter):
    # The leak check leaves these out; say so rather than hide them.
    native = sys.modules.get("repynet._repynet")
    port_fds = sorted(_by_design_fds(native)) if native else []
    if port_fds:
        terminalreporter.write_line(
            "leak check: the completion port's fds live for the process by design: "
            + ", ".join(_describe_fd(fd) for fd in port_fds))


def _describe_fd(fd):
    try:
        return f"{fd}->{os.readlink(f'/proc/self/fd/{fd}')}"
    except OSError:
        return f"{fd}->?"


def pytest_configure(config):
    config.addinivalue_line("markers", "no_leak_check: the test manages its own fds")
    config.addinivalue_line("markers", "needs_ipv6: skipped on a host without the ::1 loopback")


# --- restrictions -------------------------------------------------------------


@pytest.fixture
def restrict():
    """Put changed restrictions in force for one test: ``restrict(insockets=1)``.

    The embedded default is back in force when the test ends.
    """
    import repynet

    def apply(**changes):
        repynet.set_restrictions(repynet.Restrictions.default().replace(**changes))

    yield apply
    repynet.set_restrictions(repynet.Restrictions.default())


@pytest.fixture
def ip_preferences() -> Iterator[Callable[..., None]]:
    """ip_preferences(entries, nootherips): local-address preferences for one test.

    No preferences are in force when the test ends.
    """
    from repynet import _repynet

    yield _repynet._set_ip_preferences
    _repynet._set_ip_preferences(None, False)


# --- objects a test opens -------------------------------------------------------


@pytest.fixture
def closing() -> Iterator[Callable[[Any], None]]:
    """closing(obj) closes obj (a repynet object or a socket) after the test."""
    objects: list[Any] = []
    yield objects.append
    for obj in reversed(objects):
        obj.close()


# --- connections --------------------------------------------------------------


def _accept_one(server: Any) -> Any:
    from repynet import errors

    for _ in range(2000):
        try:
            return server.getconnection()[2]
        except errors.SocketWouldBlockError:
            time.sleep(0.001)
    raise AssertionError("the connection never reached the listener")


@pytest.fixture
def accept() -> Callable[[Any], Any]:
    """accept(server): the next connection's socket, waiting for it to arrive."""
    return _accept_one


@pytest.fixture
def connect_pair() -> Iterator[Callable[[int, int], tuple[Any, Any, Any]]]:
    """connect_pair(port, client_port) -> (client, accepted, server) on
    127.0.0.1, all three closed after the test."""
    import repynet

    made: list[Any] = []

    def connect(port: int, client_port: int) -> tuple[Any, Any, Any]:
        server = repynet.listenforconnection("127.0.0.1", port)
        client = repynet.openconnection("127.0.0.1", port, "127.0.0.1", client_port, 5)
        accepted = _accept_one(server)
        made.extend((client, accepted, server))
        return client, accepted, server

    yield connect
    for sock in made:
        sock.close()
