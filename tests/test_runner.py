"""End-to-end tests of `python -m repynet run`, through real subprocesses.

Every run is a fresh process, so restrictions set by a program never leak
into this one.  Network traffic goes to 127.0.0.1 only.  HANG_GUARD only
stops a run that hangs; no test asserts that anything is fast.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import repynet
from repynet import errors

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
HANG_GUARD = 300

# A restrictions file with the default's network limits but other ports.
RESTRICTIONS = textwrap.dedent("""\
    resource insockets 500
    resource outsockets 500
    resource netsend 300000000
    resource netrecv 300000000
    resource loopsend 10000000
    resource looprecv 10000000
    resource events 1000
    """)


def run_cli(*argv):
    return subprocess.run([sys.executable, "-m", "repynet", "run", *map(str, argv)],
                          capture_output=True, timeout=HANG_GUARD)


def write_program(tmp_path, source, name="prog.repy"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    return path


def run_program(tmp_path, source, *args, before=()):
    """Runs ``source`` as a program: run [BEFORE...] PROGRAM [ARGS...]."""
    return run_cli(*before, write_program(tmp_path, source), *args)


def write_restrictions(tmp_path, extra="", name="limits.txt", base=RESTRICTIONS):
    path = tmp_path / name
    path.write_text(base + textwrap.dedent(extra))
    return path


def run_restricted(tmp_path, source, *args, allow=(), allow_kind="messport", change=None,
                   options=()):
    """Runs ``source`` under a restrictions file given before the program.

    The file is RESTRICTIONS with ``change`` (an (old, new) text pair) made,
    allowing the ports ``allow`` as ``allow_kind``; ``options`` follow it.
    """
    base = RESTRICTIONS.replace(*change) if change else RESTRICTIONS
    limits = write_restrictions(tmp_path, port_lines(allow_kind, allow), base=base)
    return run_program(tmp_path, source, *args, before=("--restrictions", limits, *options))


def free_ports(count, kind=socket.SOCK_DGRAM, host="127.0.0.1"):
    """``count`` distinct ports nobody holds on ``host`` right now.

    Tests that bind use these, allowed by their own restrictions file,
    rather than the default range 63100-63199, which other programs on a
    shared machine (other test runs, the examples) use too.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    probes = []
    try:
        for _ in range(count):
            probe = socket.socket(family, kind)
            probes.append(probe)
            probe.bind((host, 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def port_lines(kind, ports):
    return "".join(f"resource {kind} {port}\n" for port in ports)


def last_stderr_line(result):
    return result.stderr.decode().rstrip("\n").splitlines()[-1]


def assert_printed(result, stdout):
    """The run ended with exit status 0, having printed exactly ``stdout``."""
    assert result.returncode == 0, result.stderr
    assert result.stdout == stdout


def assert_uncaught(result, class_name):
    """The run ended with exit status 1 on an uncaught ``class_name``."""
    assert result.returncode == 1, result.stderr
    assert last_stderr_line(result).startswith(f"{class_name}: ")


# --- exit status 0 --------------------------------------------------------------


def test_a_program_that_finishes_exits_0_with_only_its_output(tmp_path):
    result = run_program(tmp_path, """\
        log("hello\\n")
        """)
    assert result.returncode == 0
    assert result.stdout == b"hello\n"
    assert result.stderr == b""


def test_the_runner_waits_for_a_thread_the_program_left_running(tmp_path):
    result = run_program(tmp_path, """\
        def late():
            sleep(0.5)
            log("late thread done\\n")
        createthread(late)
        log("main code done\\n")
        """)
    assert result.returncode == 0
    assert result.stdout == b"main code done\nlate thread done\n"


def test_exitall_from_a_thread_ends_the_program_with_0(tmp_path):
    result = run_program(tmp_path, """\
        def stopper():
            log("stopping\\n")
            exitall()
        createthread(stopper)
        while True:
            sleep(0.01)
        """)
    assert result.returncode == 0
    assert result.stdout == b"stopping\n"
    assert result.stderr == b""


def test_exitall_from_the_main_code_does_not_wait_for_threads(tmp_path):
    result = run_program(tmp_path, """\
        def forever():
            while True:
                sleep(0.01)
        createthread(forever)
        log("bye")
        exitall()
        log("never")
        """)
    assert result.returncode == 0
    assert result.stdout == b"bye"


def test_sys_exit_in_a_program_gives_its_status(tmp_path):
    result = run_program(tmp_path, """\
        import sys
        log("x")
        sys.exit(3)
        """)
    assert result.returncode == 3
    assert result.stdout == b"x"


# --- exit status 1 ------------------------------------------------------------


def test_an_uncaught_repy_exception_exits_1_with_a_traceback(tmp_path):
    result = run_program(tmp_path, """\
        log("before\\n")
        def inner():
            raise RepyArgumentError("bad argument")
        inner()
        """)
    assert result.returncode == 1
    assert result.stdout == b"before\n"
    stderr = result.stderr.decode()
    assert stderr.startswith("Traceback (most recent call last):\n")
    assert "prog.repy\", line 4, in <module>" in stderr
    assert "prog.repy\", line 3, in inner" in stderr
    assert stderr.endswith("\nRepyArgumentError: bad argument\n")
    # The runner's own frames are not shown.
    assert "_program.py" not in stderr and "runner.py" not in stderr


@pytest.mark.parametrize("raise_line, last_line", [
    ("raise ValueError('plain python')", "ValueError: plain python"),
    ("class MyError(Exception): pass\nraise MyError('mine')", "MyError: mine"),
    ("raise TimeoutError('repy timeout')", "TimeoutError: repy timeout"),
    ("raise KeyError('k')", "KeyError: 'k'"),
    ("raise ConnectionRefusedError('no')", "ConnectionRefusedError: no"),
])
def test_the_last_traceback_line_is_class_name_and_message(tmp_path, raise_line, last_line):
    result = run_program(tmp_path, raise_line + "\n")
    assert result.returncode == 1
    assert last_stderr_line(result) == last_line


def test_an_uncaught_exception_in_a_thread_exits_1(tmp_path):
    result = run_program(tmp_path, """\
        def broken():
            log("thread starts\\n")
            [][1]
        createthread(broken)
        while True:
            sleep(0.01)
        """)
    assert result.returncode == 1
    assert result.stdout == b"thread starts\n"
    stderr = result.stderr.decode()
    assert stderr.startswith("Traceback (most recent call last):\n")
    assert "line 3, in broken" in stderr
    assert last_stderr_line(result) == "IndexError: list index out of range"


def test_a_syntax_error_exits_1_naming_the_line(tmp_path):
    result = run_program(tmp_path, """\
        log("ok")
        def broken(:
        """)
    assert result.stdout == b""
    stderr = result.stderr.decode()
    assert "prog.repy\", line 2" in stderr
    assert_uncaught(result, "SyntaxError")


def test_python_2_syntax_is_not_converted_with_source_py3(tmp_path):
    # The default (--source auto) translates it: tests/test_py2.py.
    result = run_program(tmp_path, 'print "hello"\n', before=("--source", "py3"))
    assert_uncaught(result, "SyntaxError")


def test_a_network_error_is_reported_by_its_repy_class_name(tmp_path):
    # Nothing listens on the free destination port.
    local, destination = free_ports(2, socket.SOCK_STREAM)
    result = run_restricted(tmp_path, """\
        openconnection("127.0.0.1", int(callargs[1]), "127.0.0.1", int(callargs[0]), 5)
        """, local, destination, allow=[local], allow_kind="connport")
    assert_uncaught(result, "ConnectionRefusedError")


# --- exit status 2 ----------------------------------------------------------------


def test_no_program_is_a_usage_error(tmp_path):
    result = run_cli()
    assert result.returncode == 2
    assert result.stdout == b""
    assert b"no PROGRAM given" in result.stderr
    assert b"usage: python -m repynet run" in result.stderr


def test_an_unknown_option_before_the_program_is_a_usage_error(tmp_path):
    program = write_program(tmp_path, "log('x')\n")
    result = run_cli("--bogus", program)
    assert result.returncode == 2
    assert result.stdout == b""
    assert b"unknown option '--bogus'" in result.stderr


@pytest.mark.parametrize("argv, message", [
    (["--restrictions"], b"--restrictions needs a value"),
    (["--api", "v3", "PROG"], b"--api must be v2 or v1, got 'v3'"),
    (["--api", "v2", "--api", "v2", "PROG"], b"--api given twice"),
    (["--restrictions", "a", "--restrictions", "b", "PROG"], b"--restrictions given twice"),
    (["PROG", "--ip"], b"--ip needs a value"),
])
def test_malformed_options_are_usage_errors(tmp_path, argv, message):
    program = write_program(tmp_path, "log('x')\n")
    result = run_cli(*[program if token == "PROG" else token for token in argv])
    assert result.returncode == 2
    assert result.stdout == b""
    assert message in result.stderr


def test_an_unreadable_program_exits_2(tmp_path):
    missing = tmp_path / "missing.repy"
    result = run_cli(missing)
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode() == (
        f"repynet run: cannot read {missing}: No such file or directory\n")


def test_a_bad_restrictions_file_exits_2_with_file_line_reason(tmp_path):
    limits = write_restrictions(tmp_path, "resource memory 5.0\n")
    program = write_program(tmp_path, "log('never runs')\n")
    result = run_cli("--restrictions", limits, program)
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode() == (
        f"{limits}:8: memory must be a non-negative integer, got '5.0'\n")


def test_a_restrictions_file_missing_a_limit_exits_2_naming_it(tmp_path):
    limits = write_restrictions(tmp_path, base=RESTRICTIONS.replace("resource events 1000\n", ""))
    program = write_program(tmp_path, "log('never runs')\n")
    result = run_cli("--restrictions", limits, program)
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"{limits}: missing resource 'events', which repynet enforces\n")


def test_a_missing_restrictions_file_exits_2(tmp_path):
    program = write_program(tmp_path, "log('never runs')\n")
    result = run_cli("--restrictions", tmp_path / "nope", program)
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"{tmp_path / 'nope'}: cannot read the file: No such file or directory\n")


def test_api_v1_runs_the_program_in_the_v1_model(tmp_path):
    # The V1 namespace has print and callfunc (tests/test_v1_runner.py has the rest).
    program = write_program(tmp_path, "print(callfunc)\n")
    result = run_cli("--api", "v1", program)
    assert result.returncode == 0
    assert result.stdout == b"initialize\nexit\n"


def test_api_v2_is_accepted(tmp_path):
    program = write_program(tmp_path, "log('v2')\n")
    result = run_cli("--api", "v2", program)
    assert result.returncode == 0
    assert result.stdout == b"v2"


def test_a_bad_ip_option_exits_2(tmp_path):
    program = write_program(tmp_path, "log('never runs')\n")
    result = run_cli("--ip", "not-an-ip", program)
    assert result.returncode == 2
    assert result.stdout == b""
    assert b"--ip" in result.stderr


# --- exit status 130 ----------------------------------------------------------------


@pytest.mark.parametrize("source", [
    # The main code sleeping in a loop.
    """\
    log("ready\\n")
    while True:
        sleep(0.01)
    """,
    # The main code finished; a thread is busy in pure Python.
    """\
    def spin():
        log("ready\\n")
        while True:
            pass
    createthread(spin)
    """,
    # The main code blocked on a lock nobody releases.
    """\
    lock = createlock()
    lock.acquire(True)
    log("ready\\n")
    lock.acquire(True)
    """,
], ids=["main-sleeping", "thread-spinning", "main-blocked-on-lock"])
def test_sigint_exits_130(tmp_path, source):
    program = write_program(tmp_path, source)
    with subprocess.Popen([sys.executable, "-m", "repynet", "run", str(program)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        try:
            assert process.stdout.readline() == b"ready\n"
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=HANG_GUARD)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 130
    assert stdout == b""
    assert b"interrupted" in stderr


# --- help and version ------------------------------------------------------------------


def test_help_prints_usage_options_and_the_threat_model(tmp_path):
    result = run_cli("--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    assert text.startswith("usage: python -m repynet run [OPTIONS] PROGRAM")
    for option in ("--restrictions FILE", "--api v2|v1", "--ip ADDR", "--iface NAME",
                   "--nootherips", "--version"):
        assert option in text
    assert "does NOT\nconfine Python code (`import socket` gets around it)" in text
    assert "unshare -n" in text
    assert result.stderr == b""


def test_version_prints_the_package_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"repynet {repynet.__version__}\n".encode()


def test_the_top_level_help_lists_run_and_demo():
    result = subprocess.run([sys.executable, "-m", "repynet", "--help"],
                            capture_output=True, timeout=HANG_GUARD)
    assert result.returncode == 0
    assert b"  run " in result.stdout and b"  demo " in result.stdout


# --- option placement ------------------------------------------------------------------

SHOW = """\
log(callargs, len(getresources()[0]["connport"]), "\\n")
"""


def test_options_before_the_program_apply(tmp_path):
    limits = write_restrictions(tmp_path, "resource connport 12345\n")
    result = run_program(tmp_path, SHOW, "a", before=("--restrictions", limits))
    assert result.returncode == 0
    assert result.stdout == b"['a'] 1 \n"


def test_known_options_right_after_the_program_apply(tmp_path):
    limits = write_restrictions(tmp_path, "resource connport 12345\n")
    result = run_program(tmp_path, SHOW, "--restrictions", limits, "a", "b")
    assert result.returncode == 0
    assert result.stdout == b"['a', 'b'] 1 \n"


def test_the_equals_form_of_an_option_is_accepted(tmp_path):
    limits = write_restrictions(tmp_path, "resource connport 12345\n")
    result = run_program(tmp_path, SHOW, f"--restrictions={limits}")
    assert result.returncode == 0
    assert result.stdout == b"[] 1 \n"


def test_the_first_other_token_starts_the_program_arguments(tmp_path):
    limits = write_restrictions(tmp_path, "resource connport 12345\n")
    result = run_program(tmp_path, SHOW, "a", "--restrictions", str(limits))
    assert result.returncode == 0
    # Not applied: the default's 100 ports are still in force.
    assert result.stdout == f"['a', '--restrictions', '{limits}'] 100 \n".encode()


def test_an_unknown_option_after_the_program_starts_the_arguments(tmp_path):
    result = run_program(tmp_path, SHOW, "--verbose", "--help")
    assert result.returncode == 0
    assert result.stdout == b"['--verbose', '--help'] 100 \n"


def test_double_dash_after_the_program_starts_the_arguments_and_is_dropped(tmp_path):
    result = run_program(tmp_path, SHOW, "--", "--help", "--", "x")
    assert result.returncode == 0
    assert result.stdout == b"['--help', '--', 'x'] 100 \n"


def test_help_right_after_the_program_is_an_option(tmp_path):
    result = run_program(tmp_path, SHOW, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(b"usage: python -m repynet run")


def test_double_dash_before_the_program_ends_the_options(tmp_path):
    program = write_program(tmp_path, SHOW, name="-odd-name.repy")
    result = subprocess.run(
        [sys.executable, "-m", "repynet", "run", "--", program.name, "x"],
        capture_output=True, timeout=HANG_GUARD, cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout == b"['x'] 100 \n"


def test_callargs_are_passed_verbatim(tmp_path):
    args = ["", "two words", "-x", "--", "caf\u00e9", "*", "$HOME", "a=b"]
    result = run_program(tmp_path, """\
        log(repr(callargs))
        """, "--", *args)
    assert result.returncode == 0
    assert result.stdout.decode("utf-8") == repr(args)


def test_callargs_are_empty_without_arguments(tmp_path):
    result = run_program(tmp_path, "log(callargs == [], type(callargs).__name__)\n")
    assert result.stdout == b"True list"


# --- log --------------------------------------------------------------------------------


@pytest.mark.parametrize("calls, expected", [
    ('log("a")', b"a"),
    ('log("a", "b")', b"a b"),
    ('log("a")\nlog("b")', b"a b"),
    ('log("a\\n")\nlog("b")', b"a\nb"),
    ('log("a\\n", "b")', b"a\nb"),
    ('log("a\\t", "b")', b"a\tb"),
    ('log("a\\r", "b")', b"a\rb"),
    ('log("a ", "b")', b"a  b"),
    ('log("", "b")', b" b"),
    ('log()', b""),
    ('log()\nlog("a")\nlog()\nlog("b")', b"a b"),
    ('log(1, 2.5, -3, 10**20, 1e100, 0.1)', b"1 2.5 -3 100000000000000000000 1e+100 0.1"),
    ('log(True, None, [1, "x"], (2,), {"k": 1})', b"True None [1, 'x'] (2,) {'k': 1}"),
    ('log("caf\\u00e9", "\\u263a")', "caf\u00e9 \u263a".encode()),
    ('log("x", "\\n")\nlog("y", "\\n")', b"x \ny \n"),
    ('log("line\\n")\nlog(1, "\\n")\nlog("end")', b"line\n1 \nend"),
    ('class Obj:\n    def __str__(self):\n        return "obj\\n"\nlog(Obj(), "next")',
     b"obj\nnext"),
])
def test_log_writes_like_python_2_print_with_a_trailing_comma(tmp_path, calls, expected):
    result = run_program(tmp_path, calls + "\n")
    assert_printed(result, expected)


def test_log_adds_no_newline_at_the_end_of_the_output(tmp_path):
    result = run_program(tmp_path, 'log("no newline", 42)\n')
    assert result.stdout == b"no newline 42"


def test_log_output_is_not_lost_when_the_program_fails(tmp_path):
    result = run_program(tmp_path, 'log("partial", 1)\nraise ValueError("x")\n')
    assert result.returncode == 1
    assert result.stdout == b"partial 1"


def test_threads_share_one_soft_space_state(tmp_path):
    result = run_program(tmp_path, """\
        done = createlock()
        done.acquire(True)
        def writer():
            log("from-thread")
            done.release()
        createthread(writer)
        done.acquire(True)
        log("from-main\\n")
        """)
    assert result.returncode == 0
    assert result.stdout == b"from-thread from-main\n"


def test_concurrent_log_calls_from_several_threads_never_split_a_call(tmp_path):
    result = run_program(tmp_path, """\
        def writer(number):
            for line in range(200):
                log("thread", number, "line", line, "\\n")
        for number in range(4):
            createthread(lambda number=number: writer(number))
        """)
    assert result.returncode == 0
    lines = result.stdout.decode().split("\n")
    assert lines[-1] == ""
    expected = {f"thread {number} line {line} " for number in range(4) for line in range(200)}
    assert sorted(lines[:-1]) == sorted(expected)


def test_log_and_python_print_keep_their_order(tmp_path):
    result = run_program(tmp_path, 'log("a\\n")\nprint("b")\nlog("c\\n")\n')
    assert result.stdout == b"a\nb\nc\n"


# --- the namespace ---------------------------------------------------------------------


def test_the_namespace_holds_the_repy_names(tmp_path):
    names = ["log", "sleep", "createthread", "createlock", "getruntime", "getthreadname",
             "exitall", "getresources", "callargs", "callfunc", "mycontext",
             "gethostbyname", "getmyip", "sendmessage", "listenformessage",
             "openconnection", "listenforconnection", *errors.__all__]
    result = run_program(tmp_path, f"""\
        missing = [name for name in {names!r} if name not in globals()]
        log(missing, callfunc, mycontext, "\\n")
        log(TimeoutError.__mro__[1].__name__, ConnectionRefusedError.__mro__[1].__name__, "\\n")
        log(issubclass(ResourceForbiddenError, ResourceUsageError))
        """)
    assert_printed(result, b"[] initialize {} \nRepyException NetworkError \nTrue")


def test_the_network_api_is_in_text_mode(tmp_path):
    server_port, client_port = free_ports(2)
    result = run_restricted(tmp_path, """\
        server_port, client_port = int(callargs[0]), int(callargs[1])
        server = listenformessage("127.0.0.1", server_port)
        sent = sendmessage("127.0.0.1", server_port, "caf\\u00e9", "127.0.0.1", client_port)
        while True:
            try:
                ip, port, message = server.getmessage()
                break
            except SocketWouldBlockError:
                sleep(0.01)
        server.close()
        log(sent, ip, port == client_port, type(message).__name__, repr(message))
        """, server_port, client_port, allow=[server_port, client_port])
    assert result.returncode == 0, result.stderr
    # One character is one byte: 'caf\u00e9' is 4 bytes on the wire.
    assert result.stdout.decode() == "4 127.0.0.1 True str 'caf\u00e9'"


def test_getthreadname_names_the_main_code_and_each_thread(tmp_path):
    result = run_program(tmp_path, """\
        names = []
        lock = createlock()
        def record():
            lock.acquire(True)
            names.append(getthreadname())
            lock.release()
        for _ in range(3):
            createthread(record)
        while True:
            lock.acquire(True)
            count = len(names)
            lock.release()
            if count == 3:
                break
            sleep(0.01)
        log(getthreadname(), len(set(names)), getthreadname() in names)
        """)
    assert_printed(result, b"MainThread 3 False")


def test_getruntime_counts_seconds_since_the_start(tmp_path):
    result = run_program(tmp_path, """\
        first = getruntime()
        sleep(0.3)
        second = getruntime()
        log(type(first).__name__, first >= 0, second - first >= 0.3)
        """)
    assert result.stdout == b"float True True"


def test_createlock_acquire_and_release_follow_repy(tmp_path):
    result = run_program(tmp_path, """\
        lock = createlock()
        log(lock.acquire(True), lock.acquire(False))
        lock.release()
        log(lock.acquire(False))
        lock.release()
        try:
            lock.release()
        except LockDoubleReleaseError:
            log("double release raises")
        """)
    assert_printed(result, b"True False True double release raises")


def test_a_lock_may_be_released_by_another_thread(tmp_path):
    result = run_program(tmp_path, """\
        lock = createlock()
        lock.acquire(True)
        createthread(lock.release)
        lock.acquire(True)
        log("released by a thread")
        """)
    assert result.stdout == b"released by a thread"


@pytest.mark.parametrize("call", [
    'sleep("x")', "sleep(-1)", "sleep(True)", 'sleep(float("nan"))', 'sleep(float("inf"))',
    "sleep(10**400)", "sleep()", "sleep(1, 2)", "sleep(seconds=1)",
    "createthread(5)", "createthread()", "createthread(log, log)",
    "createthread(function=log)",
    "createlock(1)", "createlock().acquire()", 'createlock().acquire("yes")',
    "createlock().acquire(1)", "createlock().acquire(blocking=True)",
    "createlock().release(1)", "getruntime(1)", "getthreadname(1)", "exitall(0)",
    'log("x", sep="")', "getresources(1)",
])
def test_wrong_arguments_raise_repy_argument_error(tmp_path, call):
    result = run_program(tmp_path, f"""\
        try:
            {call}
        except RepyArgumentError:
            log("RepyArgumentError")
        """)
    assert_printed(result, b"RepyArgumentError")


def test_sleep_takes_ints_and_floats(tmp_path):
    result = run_program(tmp_path, """\
        start = getruntime()
        sleep(0)
        sleep(0.2)
        sleep(1)
        log(getruntime() - start >= 1.2)
        """)
    assert result.stdout == b"True"


def test_createthread_counts_against_events(tmp_path):
    result = run_restricted(tmp_path, """\
        hold = createlock()
        hold.acquire(True)
        def waiter():
            hold.acquire(True)
            hold.release()
        log(getresources()[1]["events"])
        createthread(waiter)
        log(getresources()[1]["events"])
        try:
            createthread(waiter)
        except ResourceExhaustedError:
            log("exhausted")
        hold.release()
        """, change=("events 1000", "events 2"))
    assert_printed(result, b"1 2 exhausted")


def test_a_finished_thread_gives_its_event_back(tmp_path):
    result = run_restricted(tmp_path, """\
        done = createlock()
        done.acquire(True)
        for round in range(5):
            createthread(done.release)
            done.acquire(True)
            while getresources()[1]["events"] != 1:
                sleep(0.01)
        log("five threads in turn")
        """, change=("events 1000", "events 2"))
    assert_printed(result, b"five threads in turn")


def test_events_0_stops_the_program_before_it_runs(tmp_path):
    result = run_restricted(tmp_path, 'log("never")\n', change=("events 1000", "events 0"))
    assert result.stdout == b""
    stderr = result.stderr.decode()
    assert stderr.startswith("repynet run: the program's main thread needs one 'events' item\n")
    assert_uncaught(result, "ResourceExhaustedError")


# --- restrictions take effect -----------------------------------------------------------


def test_a_port_outside_the_default_is_forbidden(tmp_path):
    result = run_program(tmp_path, 'listenforconnection("127.0.0.1", 12345)\n')
    assert_uncaught(result, "ResourceForbiddenError")


def test_a_restrictions_file_replaces_the_allowed_ports(tmp_path):
    [port] = free_ports(1, socket.SOCK_STREAM)
    result = run_restricted(tmp_path, """\
        server = listenforconnection("127.0.0.1", int(callargs[0]))
        server.close()
        log("the file's port is allowed\\n")
        listenforconnection("127.0.0.1", 63100)
        """, port, allow=[port], allow_kind="connport")
    assert result.stdout == b"the file's port is allowed\n"
    assert_uncaught(result, "ResourceForbiddenError")


def test_a_file_without_ports_forbids_every_port(tmp_path):
    result = run_restricted(tmp_path, 'listenformessage("127.0.0.1", 63100)\n')
    assert_uncaught(result, "ResourceForbiddenError")


def test_insockets_limits_listeners(tmp_path):
    ports = free_ports(2)
    result = run_restricted(tmp_path, """\
        first_port, second_port = int(callargs[0]), int(callargs[1])
        first = listenformessage("127.0.0.1", first_port)
        try:
            listenformessage("127.0.0.1", second_port)
        except ResourceExhaustedError:
            log("second listener refused")
        first.close()
        listenformessage("127.0.0.1", second_port).close()
        log(", a listener after a close is fine")
        """, *ports, allow=ports, change=("insockets 500", "insockets 1"))
    assert_printed(result, b"second listener refused , a listener after a close is fine")


def test_a_rate_of_0_forbids_the_traffic_it_charges(tmp_path):
    result = run_restricted(tmp_path, """\
        sendmessage("127.0.0.1", 63133, "x", "127.0.0.1", 63132)
        """, allow=[63132], change=("loopsend 10000000", "loopsend 0"))
    assert_uncaught(result, "ResourceForbiddenError")


def test_a_throttled_rate_slows_the_program_down(tmp_path):
    # loopsend 2000 bytes/s; 4 datagrams of 2000 bytes charge 4 * 2064 bytes.
    # The bucket holds one second's worth, so the sends take at least
    # (8256 - 2000) / 2000 = 3.1 s; asserted with a margin, as a lower bound.
    ports = free_ports(2)
    result = run_restricted(tmp_path, """\
        client_port, server_port = int(callargs[0]), int(callargs[1])
        server = listenformessage("127.0.0.1", server_port)
        start = getruntime()
        for _ in range(4):
            sendmessage("127.0.0.1", server_port, "x" * 2000, "127.0.0.1", client_port)
        elapsed = getruntime() - start
        server.close()
        log("%.3f" % elapsed)
        """, *ports, allow=ports, change=("loopsend 10000000", "loopsend 2000"))
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) >= 2.8


# --- local-address options (spec 4.3) ---------------------------------------------------

SHOW_ADDRESSES = """\
log(getmyip())
try:
    listenformessage("127.0.0.2", int(callargs[0])).close()
    log(", 127.0.0.2 allowed")
except ResourceForbiddenError:
    log(", 127.0.0.2 forbidden")
"""


@pytest.mark.parametrize("options, expected", [
    (["--ip", "127.0.0.1"], b"127.0.0.1 , 127.0.0.2 allowed"),
    (["--ip", "127.0.0.2", "--ip", "127.0.0.1"], b"127.0.0.2 , 127.0.0.2 allowed"),
    (["--ip", "127.0.0.1", "--ip", "127.0.0.2"], b"127.0.0.1 , 127.0.0.2 allowed"),
    (["--iface", "lo"], b"127.0.0.1 , 127.0.0.2 allowed"),
    (["--ip", "127.0.0.1", "--nootherips"], b"127.0.0.1 , 127.0.0.2 forbidden"),
    (["--nootherips"], b"127.0.0.1 , 127.0.0.2 forbidden"),
    (["--ip=127.0.0.2", "--nootherips"], b"127.0.0.2 , 127.0.0.2 allowed"),
], ids=["ip", "ip-order-1", "ip-order-2", "iface", "nootherips", "nootherips-alone",
        "equals-form"])
def test_local_address_options_set_getmyip_and_the_allowed_local_ips(tmp_path, options,
                                                                     expected):
    [port] = free_ports(1, host="127.0.0.2")
    result = run_restricted(tmp_path, SHOW_ADDRESSES, port, allow=[port], options=options)
    assert_printed(result, expected)


def test_local_address_options_after_the_program_apply_too(tmp_path):
    [port] = free_ports(1, host="127.0.0.2")
    limits = write_restrictions(tmp_path, port_lines("messport", [port]))
    result = run_program(tmp_path, SHOW_ADDRESSES, "--ip", "127.0.0.2", "--nootherips",
                         "--restrictions", limits, port)
    assert_printed(result, b"127.0.0.2 , 127.0.0.2 allowed")


# --- the examples ----------------------------------------------------------------------


def test_the_echo_example_shows_the_exchange_and_ends_by_itself():
    result = run_cli(EXAMPLES / "echo.repy")
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    assert result.stdout.decode() == textwrap.dedent("""\
        server: listening on 127.0.0.1:63100
        client: connected from 127.0.0.1:63101
        client: sent 'hello', got back 'hello'
        client: sent 'Repy on Python 3', got back 'Repy on Python 3'
        client: sent 'bye', got back 'bye'
        client: closed
        server: echoed 24 bytes to 127.0.0.1:63101, client closed
        echo: done
        """)


def test_the_echo_example_runs_twice_in_a_row():
    # The client's port is reused at once (TIME_WAIT must not get in the way).
    assert run_cli(EXAMPLES / "echo.repy").returncode == 0
    assert run_cli(EXAMPLES / "echo.repy").returncode == 0


def test_the_udp_echo_example_shows_the_exchange():
    result = run_cli(EXAMPLES / "udp_echo.repy")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == textwrap.dedent("""\
        server: listening on 127.0.0.1:63110
        client: sent 'ping', got 'PING' from 127.0.0.1:63110
        client: sent 'datagrams keep their boundaries', got 'DATAGRAMS KEEP THEIR BOUNDARIES' \
from 127.0.0.1:63110
        client: sent 'stop', got 'STOP' from 127.0.0.1:63110
        server: answered 3 datagrams, closed
        udp echo: done
        """)


# --- not a sandbox ------------------------------------------------------------------------


def test_plain_python_is_not_confined(tmp_path):
    # Documented: the runner restricts the Repy calls, not Python.  A
    # program may import socket and bind a port the restrictions forbid.
    result = run_program(tmp_path, """\
        import socket
        raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        raw.bind(("127.0.0.1", 0))
        raw.close()
        try:
            listenformessage("127.0.0.1", 12345)
        except ResourceForbiddenError:
            log("repy call restricted, raw socket not")
        """)
    assert_printed(result, b"repy call restricted, raw socket not")


def test_the_runner_works_from_any_directory(tmp_path):
    program = write_program(tmp_path, 'log("cwd independent")\n')
    result = subprocess.run([sys.executable, "-m", "repynet", "run", program.name],
                            capture_output=True, timeout=HANG_GUARD, cwd=tmp_path,
                            env={**os.environ})
    assert result.returncode == 0
    assert result.stdout == b"cwd independent"
