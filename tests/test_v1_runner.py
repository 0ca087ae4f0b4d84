"""`python -m repynet run --api v1`: the V1 program model (issue 13).

Each test runs a Python-3-valid V1 program in a subprocess with its own
restrictions file allowing free ports; loopback only; lower time bounds only.
"""

import runpy
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Loaded by path: the suite also runs with --import-mode=importlib.
free_ports = runpy.run_path(str(Path(__file__).resolve().parent / "test_runner.py"))["free_ports"]

HANG_GUARD = 120

RESTRICTIONS = textwrap.dedent("""\
    resource cpu .10
    resource memory 15000000
    resource diskused 100000
    resource insockets 10
    resource outsockets 10
    resource netsend 10000
    resource netrecv 10000
    resource loopsend {loopsend}
    resource looprecv 1000000
    resource events {events}
    """)


def run_v1(tmp_path, source, *args, events=10, loopsend=1000000, language="py3"):
    """Runs source as a V1 program; its ports are PORTS[0..3] (allowed).

    The programs here are written for Python 3 (`print(a, b)`), which
    `--source auto` would read as Python 2's print statement of a tuple.
    """
    ports = free_ports(4, kind=socket.SOCK_STREAM)
    lines = "".join(f"resource connport {p}\nresource messport {p}\n" for p in ports)
    limits = tmp_path / "limits.txt"
    limits.write_text(RESTRICTIONS.format(events=events, loopsend=loopsend) + lines)
    program = tmp_path / "prog.repy"
    program.write_text(f"PORTS = {ports!r}\n" + textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "repynet", "run", "--api", "v1", "--source", language,
         "--restrictions", str(limits), str(program), *args],
        capture_output=True, timeout=HANG_GUARD)


def output(result):
    return result.stdout.decode()


def last_stderr_line(result):
    return result.stderr.decode().rstrip("\n").splitlines()[-1]


def test_initialize_then_exit_share_the_namespace_and_callargs(tmp_path):
    result = run_v1(tmp_path, """\
        if callfunc == 'initialize':
            mycontext['seen'] = callargs
            print('initialize', callargs)
        else:
            print(callfunc, mycontext['seen'])
        """, "a", "b")
    assert result.returncode == 0, result.stderr
    assert output(result) == "initialize ['a', 'b']\nexit ['a', 'b']\n"


def test_the_program_ends_only_when_no_listener_is_left(tmp_path):
    result = run_v1(tmp_path, """\
        def on_connection(ip, port, sock, handle, listener):
            print('got', sock.recv(5))
            sock.close()
            print('stopped', stopcomm(listener))

        if callfunc == 'initialize':
            waitforconn('127.0.0.1', PORTS[0], on_connection)
            conn = openconn('127.0.0.1', PORTS[0])
            sleep(0.3)
            conn.send('hello')
            print('initialize done')
        else:
            print('exit', getruntime() >= 0.3)
        """)
    assert result.returncode == 0, result.stderr
    assert output(result) == "initialize done\ngot hello\nstopped True\nexit True\n"


def test_a_udp_echo_between_two_recvmess_listeners(tmp_path):
    result = run_v1(tmp_path, """\
        def on_reply(ip, port, message, handle):
            print('reply', message, port == PORTS[0])
            stopcomm(handle)

        def on_request(ip, port, message, handle):
            sendmess(ip, port, message.upper(), '127.0.0.1', PORTS[0])
            stopcomm(handle)

        if callfunc == 'initialize':
            recvmess('127.0.0.1', PORTS[0], on_request)
            recvmess('127.0.0.1', PORTS[1], on_reply)
            sendmess('127.0.0.1', PORTS[0], 'ping', '127.0.0.1', PORTS[1])
        """)
    assert result.returncode == 0, result.stderr
    assert output(result) == "reply PING True\n"


def test_timers_fire_after_their_delay_and_cancel_once(tmp_path):
    result = run_v1(tmp_path, """\
        def fired(name):
            print('fired', name, getruntime() >= 0.2)

        if callfunc == 'initialize':
            settimer(0.2, fired, ('kept',))
            cancelled = settimer(0.1, fired, ['cancelled'])
            print(canceltimer(cancelled), canceltimer(cancelled))
        """)
    assert result.returncode == 0, result.stderr
    assert output(result) == "True False\nfired kept True\n"


@pytest.mark.parametrize("handle", ["'nothing'", "5", "None"])
def test_canceltimer_of_a_non_timer_handle_raises(tmp_path, handle):
    result = run_v1(tmp_path, f"canceltimer({handle})\n")
    assert result.returncode == 1
    assert last_stderr_line(result) == "Exception: Invalid timer handle specified!"


def test_exitall_ends_at_once_with_0_even_with_a_listener(tmp_path):
    result = run_v1(tmp_path, """\
        if callfunc == 'initialize':
            waitforconn('127.0.0.1', PORTS[0], lambda *args: None)
            settimer(0.1, exitall, ())
            print('initialize')
        else:
            print('exit phase never runs')
        """)
    assert result.returncode == 0, result.stderr
    assert output(result) == "initialize\n"


def test_an_uncaught_exception_in_a_callback_exits_1_with_a_traceback(tmp_path):
    result = run_v1(tmp_path, """\
        def on_message(ip, port, message, handle):
            raise ValueError('bad message ' + message)

        if callfunc == 'initialize':
            recvmess('127.0.0.1', PORTS[0], on_message)
            sendmess('127.0.0.1', PORTS[0], 'x')
        """)
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert "on_message" in stderr and "Traceback" in stderr
    assert last_stderr_line(result) == "ValueError: bad message x"


def test_an_uncaught_exception_in_a_timer_exits_1(tmp_path):
    result = run_v1(tmp_path, """\
        def broken():
            raise Exception('timer broke')
        if callfunc == 'initialize':
            settimer(0, broken, ())
        """)
    assert result.returncode == 1
    assert last_stderr_line(result) == "Exception: timer broke"


def test_v1_errors_reach_the_program_as_exception_with_v1_texts(tmp_path):
    result = run_v1(tmp_path, """\
        for call in (lambda: stopcomm('x'),
                     lambda: openconn('127.0.0.1', 0),
                     lambda: waitforconn('', PORTS[0], print),
                     lambda: waitforconn('127.0.0.1', 1, print)):
            try:
                call()
            except Exception as err:
                print(type(err).__name__, err)
        """)
    assert result.returncode == 0, result.stderr
    assert output(result).splitlines()[:3] == [
        "Exception Invalid commhandle specified!",
        "Exception Destination port number must be an integer, between 1 and 65535.",
        "Exception Must specify a local IP address",
    ]
    assert output(result).splitlines()[3] == "Exception Resource 'connport 1' not allowed!!!"


def test_the_namespace_has_the_v1_helpers(tmp_path):
    result = run_v1(tmp_path, """\
        if callfunc == 'exit':
            exitall()
        lock = getlock()
        print(lock.acquire(), lock.release())
        print(get_thread_name())
        print(isinstance(getruntime(), float))
        print(sorted(name for name in ('openconn', 'waitforconn', 'recvmess', 'sendmess',
                                       'stopcomm', 'gethostbyname_ex', 'getmyip')
                     if name in globals()) == sorted(('openconn', 'waitforconn', 'recvmess',
                     'sendmess', 'stopcomm', 'gethostbyname_ex', 'getmyip')))
        print(gethostbyname_ex('127.0.0.1'))
        """)
    assert result.returncode == 0, result.stderr
    assert output(result) == ("True None\nMainThread\nTrue\nTrue\n"
                              "('127.0.0.1', [], ['127.0.0.1'])\n")


def test_callbacks_wait_for_a_free_event(tmp_path):
    # events 3: the initialize phase, the listener and one callback.  The
    # second message's callback waits until the first callback returns.
    result = run_v1(tmp_path, """\
        def on_message(ip, port, message, handle):
            print('start', message)
            sleep(0.3)
            print('end', message)
            mycontext['n'] = mycontext.get('n', 0) + 1
            if mycontext['n'] == 2:
                stopcomm(handle)

        if callfunc == 'initialize':
            recvmess('127.0.0.1', PORTS[0], on_message)
            sendmess('127.0.0.1', PORTS[0], 'a')
            sendmess('127.0.0.1', PORTS[0], 'b')
            sleep(1.0)  # keeps this phase's event while both messages arrive
        """, events=3)
    assert result.returncode == 0, result.stderr
    lines = output(result).splitlines()
    assert lines[0].startswith("start") and lines[1].startswith("end")
    assert lines[2].startswith("start") and lines[3].startswith("end")


def test_settimer_without_a_free_event_raises(tmp_path):
    # events 1: the initialize phase holds the only one.
    result = run_v1(tmp_path, "settimer(1, print, ())\n", events=1)
    assert result.returncode == 1
    assert last_stderr_line(result) == "Exception: Resource 'events' limit exceeded!!"


def test_a_low_loop_rate_delays_a_tcp_exchange(tmp_path):
    result = run_v1(tmp_path, """\
        def on_connection(ip, port, sock, handle, listener):
            total = 0
            try:
                while True:
                    total += len(sock.recv(1000))
            except Exception:
                pass
            print('received', total)
            sock.close()
            stopcomm(listener)

        if callfunc == 'initialize':
            waitforconn('127.0.0.1', PORTS[0], on_connection)
            conn = openconn('127.0.0.1', PORTS[0])
            sent = 0
            while sent < 3000:
                sent += conn.send('x' * 500)
            conn.close()
        else:
            print('elapsed', getruntime() >= 1.5)
        """, loopsend=1000)
    # 3000 bytes and their overheads at 1000 B/s with a one-second bucket.
    assert result.returncode == 0, result.stderr
    assert output(result) == "received 3000\nelapsed True\n"


def test_a_v1_restrictions_file_runs_and_its_call_rules_are_not_enforced(tmp_path):
    # Float values, repeated port lines, call rules of each form and
    # tab-indented comments; `call sendmess deny` is parsed, not enforced.
    ports = free_ports(2, kind=socket.SOCK_STREAM)
    limits = tmp_path / "restrictions.v1"
    limits.write_text(
        "resource cpu .10\n"
        "resource memory 15000000   # bytes\n"
        "resource diskused 10000000\n"
        "resource events 10\n"
        "resource insockets 2\n"
        "resource outsockets 5\n"
        "resource netsend 10000.0\n"
        "resource netrecv 10000\n"
        "resource loopsend 1000000\n"
        "resource looprecv 1000000.5\n"
        + "".join(f"resource messport {p}\nresource connport {p}\n" for p in ports)
        + "call sendmess deny\t\t# the network layer does not enforce call rules\n"
        "call recvmess arg 1 is 5 allow \t# arg N is VALUE\n"
        "call stopcomm noargs is 1 allow\n")
    program = tmp_path / "prog.repy"
    program.write_text(textwrap.dedent(f"""\
        def on_message(ip, port, message, handle):
            print('got', message)
            stopcomm(handle)
        if callfunc == 'initialize':
            recvmess('127.0.0.1', {ports[0]}, on_message)
            sendmess('127.0.0.1', {ports[0]}, 'allowed anyway', '127.0.0.1', {ports[1]})
        """))
    result = subprocess.run(
        [sys.executable, "-m", "repynet", "run", "--api", "v1", "--source", "py3",
         "--restrictions", str(limits), str(program)], capture_output=True,
        timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    assert output(result) == "got allowed anyway\n"


def test_the_v1_echo_example_runs(tmp_path):
    example = Path(__file__).resolve().parent.parent / "examples" / "echo.v1.repy"
    result = subprocess.run([sys.executable, "-m", "repynet", "run", "--api", "v1",
                             str(example)], capture_output=True, timeout=HANG_GUARD)
    assert result.returncode == 0, result.stderr
    assert output(result) == ("client: hello\nclient: Repy V1 on Python 3\nclient: bye\n"
                              "server: client gone (Socket closed)\nexit: done\n")


def test_a_python_2_v1_program_runs_with_its_python_2_meaning(tmp_path):
    # V1 programs are written in Python 2: the print statement, `/` between
    # ints floors, and callbacks see the same translated builtins.
    result = run_v1(tmp_path, """\
        if callfunc == 'initialize':
            print "half", 7 / 2
            def got(ip, port, mess, ch):
                print "got", mess, xrange(3)[2]
                stopcomm(ch)
            recvmess('127.0.0.1', PORTS[0], got)
            sendmess('127.0.0.1', PORTS[0], 'ping', '127.0.0.1', PORTS[1])
        """, language="auto")
    assert result.returncode == 0, result.stderr
    assert output(result) == "half 3\ngot ping 2\n"
