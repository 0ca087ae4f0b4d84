"""The command line's front door (repynet/cli.py) and the runner's --trace,
--summary and argument-order hint, through real subprocesses where the
process's exit matters.  Traffic: 127.0.0.1 only.  HANG_GUARD only stops a
run that hangs; no test asserts that anything is fast.
"""

import socket
import subprocess
import sys
import textwrap

import pytest

import repynet
from repynet import _repynet, cli

HANG_GUARD = 300
C_OBSERVABILITY = pytest.mark.skipif(
    not hasattr(_repynet, "_rate_waits"),
    reason="needs the C core's repynet.denied/repynet.ratewait events and "
           "_rate_waits() (the hot-path work), not in this build")


def repynet_cli(*argv, cwd=None):
    return subprocess.run([sys.executable, "-m", "repynet", *map(str, argv)],
                          capture_output=True, timeout=HANG_GUARD, cwd=cwd, text=True)


def free_udp_ports():
    """Two distinct UDP ports nobody holds now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as first, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as second:
        first.bind(("127.0.0.1", 0))
        second.bind(("127.0.0.1", 0))
        return first.getsockname()[1], second.getsockname()[1]


def limits_file(tmp_path, port, port2, loopsend=10000000):
    path = tmp_path / "limits.txt"
    path.write_text(textwrap.dedent(f"""\
        resource insockets 5
        resource outsockets 5
        resource netsend 10000000
        resource netrecv 10000000
        resource loopsend {loopsend}
        resource looprecv 10000000
        resource events 10
        resource messport {port}
        resource messport {port2}
        """))
    return path


def program_file(tmp_path, source):
    path = tmp_path / "prog.repy"
    path.write_text(textwrap.dedent(source))
    return path


# --- the top level ----------------------------------------------------------------------

def test_version_at_the_top_level():
    result = repynet_cli("--version")
    assert (result.returncode, result.stdout) == (0, f"repynet {repynet.__version__}\n")


def test_top_level_help_has_a_usage_line_and_only_the_real_commands():
    result = repynet_cli("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m repynet [-h] [--version] COMMAND ...")
    listed = [line.split()[0] for line in result.stdout.splitlines()
              if line.startswith("    ") and line.split()]
    assert listed == list(cli.COMMANDS)


def test_no_arguments_is_a_usage_error_with_the_help():
    result = repynet_cli()
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m repynet")


def test_an_unknown_command_is_a_usage_error():
    result = repynet_cli("serve")
    assert result.returncode == 2
    assert "invalid choice: 'serve'" in result.stderr


def test_the_console_script_names_itself_in_usage_lines(capsys):
    assert cli.main(["run", "--help"], prog="repynet") == 0
    assert capsys.readouterr().out.startswith("usage: repynet run [OPTIONS] PROGRAM")


def test_demo_help_shows_help_and_does_not_run_the_demo():
    result = repynet_cli("demo", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m repynet demo [-h]")
    assert "core ok" not in result.stdout


def test_demo_runs():
    result = repynet_cli("demo")
    assert result.returncode == 0
    assert result.stdout.startswith("repynet core ok")


def test_run_help_lists_trace_and_summary():
    result = repynet_cli("run", "--help")
    assert "  --trace " in result.stdout and "  --summary " in result.stdout


# --- the original's argument order --------------------------------------------------------

def test_a_restrictions_file_given_as_the_program_gets_a_hint(tmp_path):
    limits = limits_file(tmp_path, 63100, 63101)
    (tmp_path / "call.txt").write_text("# a comment\ncall gethostbyname allow\n")
    program = program_file(tmp_path, "log('never run')\n")
    for restrictions_path in (limits, tmp_path / "call.txt"):
        result = repynet_cli("run", restrictions_path, program)
        assert result.returncode == 2
        assert "is a restrictions file, not a program" in result.stderr
        assert "run --restrictions RESTRICTIONS PROGRAM" in result.stderr
        assert result.stdout == ""


def test_a_program_with_a_syntax_error_is_still_the_programs_error(tmp_path):
    program = program_file(tmp_path, "resource = 1\nlog(resource\n")
    result = repynet_cli("run", program)
    assert result.returncode == 1
    assert "SyntaxError" in result.stderr and "restrictions file" not in result.stderr


# --- --trace and --summary ----------------------------------------------------------------

DENIED_AND_RATED = """\
    try:
        listenformessage("127.0.0.1", 1)
    except ResourceForbiddenError:
        log("denied\\n")
    for _ in range(3):
        sendmessage("127.0.0.1", {port}, "x" * 2000, "127.0.0.1", {port2})
    {ending}
    """


def run_observed(tmp_path, *options, ending=""):
    port, port2 = free_udp_ports()
    limits = limits_file(tmp_path, port, port2, loopsend=4000)
    program = program_file(tmp_path, DENIED_AND_RATED.format(port=port, port2=port2,
                                                             ending=ending))
    return repynet_cli("run", "--restrictions", limits, *options, program)


def test_without_options_nothing_is_reported(tmp_path):
    result = run_observed(tmp_path)
    assert (result.returncode, result.stdout, result.stderr) == (0, "denied\n", "")


@C_OBSERVABILITY
def test_trace_logs_the_denied_call_and_the_rate_waits(tmp_path):
    result = run_observed(tmp_path, "--trace")
    assert result.returncode == 0 and result.stdout == "denied\n"
    lines = result.stderr.splitlines()
    assert any(line.startswith("repynet trace: denied messport") for line in lines)
    waits = [line for line in lines if line.startswith("repynet trace: waiting ")]
    assert waits and all(line.endswith(" s for loopsend") for line in waits)


@C_OBSERVABILITY
@pytest.mark.parametrize("ending", ["", "exitall()"], ids=["finished", "exitall"])
def test_summary_prints_the_resources_and_the_rate_waits_at_the_end(tmp_path, ending):
    result = run_observed(tmp_path, "--summary", ending=ending)
    assert result.returncode == 0 and result.stdout == "denied\n"
    lines = result.stderr.splitlines()
    assert lines[0] == "repynet summary: resources (used / limit)"
    assert "  loopsend" in result.stderr and "  events" in result.stderr
    waited = dict(line.split() for line in lines[lines.index(
        "repynet summary: seconds waited for each rate") + 1:])
    assert set(waited) == {"netsend", "netrecv", "loopsend", "looprecv"}
    # 6000 bytes at 4000 bytes/s (a second of it may go at once): a wait.
    assert float(waited["loopsend"]) > 0.0
    assert float(waited["netsend"]) == 0.0
