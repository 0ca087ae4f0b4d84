"""Native dylink and the rest of the program API, through the command line.

The programs and modules live in tests/programs/ (Python 2 source, as
Seattle's libraries are); network traffic goes to 127.0.0.1 only.
"""

import os
import runpy
import socket
import textwrap
from pathlib import Path

import pytest

# Loaded by path: the suite also runs with --import-mode=importlib.
harness = runpy.run_path(str(Path(__file__).resolve().parent / "programs" / "harness.py"))
PROGRAMS = harness["PROGRAMS"]
run = harness["run"]
stderr_lines = harness["stderr_lines"]
failed_run = harness["failed_run"]

RESTRICTIONS = textwrap.dedent("""\
    resource insockets 10
    resource outsockets 10
    resource netsend 10000000
    resource netrecv 10000000
    resource loopsend 10000000
    resource looprecv 10000000
    resource events 10
    """)


def run_ok(tmp_path, *argv, env=None):
    result = run(tmp_path, *argv, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    return result.stdout.decode()


def test_dy_import_module_returns_a_module_evaluated_once(tmp_path):
    assert run_ok(tmp_path, "dylink_import.r2py") == textwrap.dedent("""\
        same object: True
        repr: <Imported module 'counter'>
        bump: 2 5
        evaluations: ['import']
        module callfunc: import
        hidden exported: False api exported: False
        live context: True not exported
        own mycontext: {'private': 'counter'} {}
        main callfunc: initialize main _context: True
        """)


def test_dy_import_module_symbols_copies_globals_but_not_the_importers_state(tmp_path):
    assert run_ok(tmp_path, "dylink_symbols.r2py") == textwrap.dedent("""\
        bump: 5 [5]
        underscore copied: not exported
        kept: initialize {'mine': True} True
        dylink kept: dy_import_module_symbols
        """)


def test_a_circular_import_sees_an_empty_module(tmp_path):
    assert run_ok(tmp_path, "dylink_circular.r2py") == textwrap.dedent("""\
        a sees b: b
        b saw an empty a: []
        a is cached: True
        """)


def test_an_include_line_imports_the_symbols(tmp_path):
    assert run_ok(tmp_path, "dylink_include.r2py") == "included: 1 initialize\n"


def test_new_callfunc_and_additional_globals(tmp_path):
    assert run_ok(tmp_path, "dylink_options.r2py") == textwrap.dedent("""\
        module saw: ('initialize', 'handed on', False)
        symbols saw: custom
        """)


def test_a_module_that_fails_raises_its_own_error_in_the_importer(tmp_path):
    stderr = failed_run(tmp_path, "dylink_broken.r2py", b"caught: broken_module cannot start\n")
    assert 'File "dylink_broken.r2py", line 5, in <module>' in stderr
    assert ('File "broken_module.r2py", line 3, in <module>\n'
            '    raise ValueError, "broken_module cannot start"\n') in stderr
    assert stderr.splitlines()[-1] == "ValueError: broken_module cannot start"
    assert "dylink.py" not in stderr and "_program.py" not in stderr


def test_a_missing_module_names_where_dylink_looked(tmp_path):
    libs = [tmp_path / "one", tmp_path / "two"]
    result = run(tmp_path, "--lib", libs[0], "dylink_missing.r2py",
                 env={"REPY_PATH": str(libs[1])})
    assert result.returncode == 1
    tried = ", ".join(f"no_such_module{extension}"
                      for extension in ("", ".py", ".repy", ".py.repy", ".pp", ".r2py"))
    assert stderr_lines(result)[-1] == (
        f"ModuleNotFoundError: dylink: cannot find module 'no_such_module': tried {tried} "
        f"in {PROGRAMS}, {libs[0]}, {libs[1]}")


def test_modules_are_found_with_lib_before_repy_path(tmp_path):
    assert run_ok(tmp_path, "--lib", "lib", "dylink_lib.r2py",
                  env={"REPY_PATH": "lib2"}) == "found in the library directory\n"
    assert run_ok(tmp_path, "--lib", "lib2", "--lib", "lib", "dylink_lib.r2py") \
        == "found in the second library directory\n"
    assert run_ok(tmp_path, "dylink_lib.r2py",
                  env={"REPY_PATH": os.pathsep.join(["nowhere", "lib2", "lib"])}) \
        == "found in the second library directory\n"


CHAIN_OUTPUT = textwrap.dedent("""\
    layer one callargs: ['layer_two.r2py', 'dispatch_app.r2py', 'x', 'y']
    layer two callargs: ['dispatch_app.r2py', 'x', 'y'] inherits: layer one
    app: initialize ['x', 'y'] layer one layer two
    app mycontext: {} own context: True
    dispatched: True
    layer one dispatched: True
    layer one done
    """)


def test_dy_dispatch_module_runs_a_chain_with_the_rest_of_callargs(tmp_path):
    assert run_ok(tmp_path, "layer_one.r2py", "layer_two.r2py", "dispatch_app.r2py",
                  "x", "y") == CHAIN_OUTPUT


def test_dy_dispatch_module_without_a_next_program_returns_false(tmp_path):
    assert run_ok(tmp_path, "layer_one.r2py") == textwrap.dedent("""\
        layer one callargs: []
        layer one dispatched: False
        layer one done
        """)


@pytest.mark.parametrize("dylink_path", ["dylink.r2py", "elsewhere/dylink.repy"])
def test_dylink_itself_as_the_first_module_runs_the_next(tmp_path, dylink_path):
    # repy.py's command line was `repy.py RESTRICTIONS dylink.r2py PROGRAM ARGS`;
    # dylink is native, so its file need not exist.
    assert run_ok(tmp_path, dylink_path, "layer_one.r2py", "layer_two.r2py",
                  "dispatch_app.r2py", "x", "y") == CHAIN_OUTPUT


def test_a_library_module_runs_network_code(tmp_path):
    probes = [socket.socket(), socket.socket()]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        server_port, client_port = (probe.getsockname()[1] for probe in probes)
    finally:
        for probe in probes:
            probe.close()
    limits = tmp_path / "limits.txt"
    limits.write_text(RESTRICTIONS + f"resource connport {server_port}\n"
                      f"resource connport {client_port}\n")
    output = run_ok(tmp_path, "--restrictions", limits, "dylink_network.r2py",
                    server_port, client_port)
    assert output == "echo: 'ping \u00ff' True recv() timed out\n"


def test_the_rest_of_the_program_api(tmp_path):
    assert run_ok(tmp_path, "repy_api.r2py") == textwrap.dedent("""\
        randombytes: str 1024 True True
        no error: None
        last error: True ValueError: remembered
        _context: True initialize
        CHILD_CONTEXT: True True True
        """)


def test_randombytes_is_charged_to_the_random_rate(tmp_path):
    # 2048 bytes/s: two calls pass at once, the third finds 2048 used (one
    # second's worth, allowed), the fourth waits for 1024 bytes to drain.
    limits = tmp_path / "limits.txt"
    limits.write_text(RESTRICTIONS + "resource random 2048\n")
    elapsed = float(run_ok(tmp_path, "--restrictions", limits, "random_rate.r2py"))
    assert elapsed >= 0.45


def test_dylink_names_are_checked_the_repy_way(tmp_path):
    program = tmp_path / "prog.r2py"
    program.write_text("dy_import_module(42)\n")
    result = run(tmp_path, program)
    assert result.returncode == 1
    assert stderr_lines(result)[-1] == \
        "RepyArgumentError: dy_import_module() needs a module name (str), got int"


def test_a_module_with_a_syntax_error_raises_it_in_the_importer(tmp_path):
    (tmp_path / "typo.r2py").write_text('print "line 1"\nprint "line 2" +\n')
    program = tmp_path / "prog.r2py"
    program.write_text('x = 1\ndy_import_module("typo")\n')
    result = run(tmp_path, program)
    assert result.returncode == 1
    stderr = result.stderr.decode()
    assert stderr.startswith("Traceback (most recent call last):\n")
    assert f'File "{program}", line 2, in <module>' in stderr
    assert f'File "{tmp_path / "typo.r2py"}", line 2\n' in stderr
    assert stderr_lines(result)[-1] == "SyntaxError: invalid syntax (Python 2 source)"
    assert "py2compat.py" not in stderr and "ast.py" not in stderr


def test_threads_importing_a_module_at_once_share_one_evaluation(tmp_path):
    assert run_ok(tmp_path, "dylink_threads.r2py") == "one evaluation: True True\n"


def test_importing_dylink_itself_is_a_no_op(tmp_path):
    program = tmp_path / "prog.r2py"
    program.write_text('m = dy_import_module("dylink.r2py")\n'
                       'dy_import_module_symbols("dylink")\n'
                       'print m, HAS_DYLINK, callfunc\n')
    assert run_ok(tmp_path, program) == "<Imported module 'dylink'> True initialize\n"
