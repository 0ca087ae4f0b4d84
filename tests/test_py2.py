"""Python 2 Repy source: translated at load time, Python 2 meaning, user's lines.

The programs live in tests/programs/ and run through the command line; each
run gets its own translation cache (XDG_CACHE_HOME under tmp_path).
"""

import os
import runpy
import stat
from pathlib import Path

import pytest

from repynet import py2compat

# Loaded by path: the suite also runs with --import-mode=importlib.
harness = runpy.run_path(str(Path(__file__).resolve().parent / "programs" / "harness.py"))
run = harness["run"]
run_source = harness["run_source"]
stderr_lines = harness["stderr_lines"]
failed_run = harness["failed_run"]


CONSTRUCTS_OUTPUT = """\
except: raised with a comma
raise class: bare class
print items 1 2.5
trailing comma continues the line

backquotes: [1, 'a']
ne: True False
long: 26 octal: 511 8
xrange: [0, 2, 4, 6]
has_key: True False
keys sorted: ['a', 'b', 'c'] first: a
iteritems: [('a', 1), ('b', 2), ('c', 3)]
values indexed: 3 3
division: 3 -4 3.5 3.5 2
augmented division: 4 [4, 4.5]
floor division: 3
unicode and long names: u 3 True
u literal: True True
map and filter are lists: 1 5
zip is a list: (2, 'b')
reduce and cmp: 6 -1 0
round gives floats: 3.0 -3.0 2.67 1200.0
str stays text: True 2
"""


def test_every_translated_construct_keeps_its_python_2_meaning(tmp_path):
    result = run(tmp_path, "py2_constructs.r2py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == CONSTRUCTS_OUTPUT


def test_the_cached_translation_runs_the_same(tmp_path):
    first = run(tmp_path, "py2_constructs.r2py")
    second = run(tmp_path, "py2_constructs.r2py")
    assert list((tmp_path / "cache" / "repynet").glob("*.code"))
    assert first.stdout == second.stdout == CONSTRUCTS_OUTPUT.encode()


def test_a_python_2_syntax_error_names_the_users_line(tmp_path):
    result = run(tmp_path, "py2_syntax_error.r2py")
    assert result.returncode == 1
    assert result.stdout == b""
    lines = stderr_lines(result)
    assert lines[0] == '  File "py2_syntax_error.r2py", line 5'
    assert lines[1].strip() == "return a +* b"
    assert lines[-1] == "SyntaxError: invalid syntax (Python 2 source)"


def test_a_traceback_points_at_the_users_lines(tmp_path):
    stderr = failed_run(tmp_path, "py2_traceback.r2py", b"helper got 1\nfound 1\n")
    assert 'File "py2_traceback.r2py", line 12, in <module>\n    helper(1)\n' in stderr
    assert 'File "py2_traceback.r2py", line 9, in helper\n    return value / 0\n' in stderr
    assert stderr.splitlines()[-1].startswith("ZeroDivisionError: ")
    assert "py2compat.py" not in stderr and "dylink.py" not in stderr


def test_auto_gives_source_that_parses_as_python_2_its_python_2_meaning(tmp_path):
    result = run_source(tmp_path, 'log(7 / 2, "\\n")\n')
    assert result.stdout == b"3 \n"


def test_source_py3_forces_python_3(tmp_path):
    result = run_source(tmp_path, 'log(7 / 2, "\\n")\n', "--source", "py3")
    assert result.stdout == b"3.5 \n"


def test_auto_runs_source_that_parses_only_as_python_3_as_python_3(tmp_path):
    result = run_source(tmp_path, """\
        def outer(*, start):
            total = start
            def add():
                nonlocal total
                total += 7 / 2
            add()
            return total
        log(f"{outer(start=1)}\\n")
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"4.5\n"


def test_source_py2_rejects_python_3_only_source(tmp_path):
    result = run_source(tmp_path, "x = 1\ndef f(*, k):\n    pass\n", "--source", "py2")
    assert result.returncode == 1
    assert 'line 2' in result.stderr.decode()
    assert stderr_lines(result)[-1] == "SyntaxError: Python 3 only syntax (Python 2 source)"


def test_auto_reports_the_error_of_the_reading_that_got_further(tmp_path):
    # Python 3 stops on line 3 (except X, e); Python 2 reads on to line 6.
    result = run_source(tmp_path, """\
        try:
            pass
        except ValueError, e:
            pass
        print "fine"
        x = = 1
        """)
    assert result.returncode == 1
    assert 'prog.r2py", line 6' in result.stderr.decode()


def test_future_division_keeps_true_division(tmp_path):
    result = run_source(tmp_path, """\
        from __future__ import division
        print 7 / 2, 7 // 2
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"3.5 3\n"


def test_the_print_statement_shares_log_soft_space(tmp_path):
    result = run_source(tmp_path, """\
        log("a")
        print "b",
        log("c\\n")
        print "d\\t",
        print "e"
        """)
    assert result.stdout == b"a b c\nd\te\n"


def test_an_unknown_source_language_is_a_usage_error(tmp_path):
    result = run_source(tmp_path, "pass\n", "--source", "py4")
    assert result.returncode == 2
    assert b"--source must be py2, py3 or auto" in result.stderr


# --- the compiler overflowing (issue 11 item 5) ------------------------------------------

DEEP = "x = " + "-" * 50000 + "1\n"


@pytest.mark.parametrize("language", ["auto", "py2", "py3"])
def test_a_program_too_deep_to_compile_gives_one_line_and_exit_1(tmp_path, language):
    result = run_source(tmp_path, DEEP, "--source", language)
    assert result.returncode == 1
    lines = stderr_lines(result)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{tmp_path / 'prog.r2py'}: too deeply nested to compile (")
    assert lines[0].endswith(("(RecursionError)", "(MemoryError)"))


def test_a_memory_error_from_the_compiler_is_a_compile_overflow(monkeypatch):
    def exhausted(*args):
        raise MemoryError
    monkeypatch.setattr(py2compat, "_compile_uncached", exhausted)
    with pytest.raises(py2compat.CompileOverflowError) as raised:
        py2compat.compile_repy(b"pass\n", "prog.r2py")
    assert str(raised.value) == "prog.r2py: too deeply nested to compile (MemoryError)"


def test_a_module_too_deep_to_compile_raises_in_the_importer(tmp_path):
    (tmp_path / "deep.r2py").write_text(DEEP)
    result = run_source(tmp_path, """\
        try:
            dy_import_module("deep")
        except Exception, e:
            print type(e).__name__, str(e).endswith("too deeply nested to compile (RecursionError)")
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"CompileOverflowError True\n"


# --- the cache ----------------------------------------------------------------------------


def test_the_cache_directory_and_its_files_are_private(tmp_path):
    result = run(tmp_path, "py2_constructs.r2py")
    assert result.returncode == 0
    directory = tmp_path / "cache" / "repynet"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    entries = list(directory.glob("*.code"))
    assert entries
    assert all(stat.S_IMODE(entry.stat().st_mode) == 0o600 for entry in entries)


def test_a_cache_directory_writable_by_others_is_refused(tmp_path):
    directory = tmp_path / "cache" / "repynet"
    directory.mkdir(parents=True)
    directory.chmod(0o777)
    result = run(tmp_path, "py2_constructs.r2py")
    assert result.returncode == 0
    assert result.stdout.decode() == CONSTRUCTS_OUTPUT
    assert stderr_lines(result) == [
        f"repynet: not caching translated code: {directory} is writable by group or others "
        "(mode 0777)"]
    assert list(directory.iterdir()) == []


def test_a_cache_directory_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(tmp_path).st_uid + 1)
    with pytest.raises(py2compat.CacheDirectoryError, match="is owned by uid"):
        py2compat.check_cache_directory(str(tmp_path))


def test_a_symbolic_link_as_cache_directory_is_refused(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(py2compat.CacheDirectoryError, match="is not a directory"):
        py2compat.check_cache_directory(str(tmp_path / "link"))


def test_the_cache_directory_is_made_with_mode_0700(tmp_path):
    py2compat.check_cache_directory(str(tmp_path / "new"))
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700


def test_a_warm_cache_does_not_translate_again(tmp_path, monkeypatch):
    cache = py2compat.TranslationCache(str(tmp_path))
    source = b'print "cached", 7 / 2\n'
    first = py2compat.compile_repy(source, "prog.r2py", "auto", cache)

    def no_translation(*args):
        raise AssertionError("translated again")
    monkeypatch.setattr(py2compat, "_translate", no_translation)
    second = py2compat.compile_repy(source, "prog.r2py", "auto", cache)
    assert (second.language, second.code) == (first.language, first.code) == ("py2", first.code)


def test_the_cache_key_holds_the_translator_version_and_the_source(tmp_path, monkeypatch):
    key = py2compat._cache_key(b"pass\n", "prog.r2py", "auto")
    assert py2compat._cache_key(b"pass \n", "prog.r2py", "auto") != key
    assert py2compat._cache_key(b"pass\n", "prog.r2py", "py2") != key
    monkeypatch.setattr(py2compat, "TRANSLATOR_VERSION", "next")
    assert py2compat._cache_key(b"pass\n", "prog.r2py", "auto") != key


def test_a_damaged_cache_entry_is_a_miss(tmp_path):
    cache = py2compat.TranslationCache(str(tmp_path))
    key = py2compat._cache_key(b"pass\n", "prog.r2py", "auto")
    (tmp_path / f"{key}.code").write_bytes(b"\x00not marshal")
    compiled = py2compat.compile_repy(b"pass\n", "prog.r2py", "auto", cache)
    assert compiled.language == "py2"
    assert cache.load(key) is not None


def test_the_print_function_future_import_is_honoured(tmp_path):
    result = run_source(tmp_path, """\
        from __future__ import print_function
        print("a", "b", 7 / 2)
        print("c", end="")
        print()
        """)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"a b 3\nc\n"


def test_a_translated_program_that_python_3_cannot_compile_shows_only_its_line(tmp_path):
    # Tuple parameters are not translated (the fix would add lines).
    result = run_source(tmp_path, "x = 1\ndef f((a, b)):\n    return a\n")
    assert result.returncode == 1
    lines = stderr_lines(result)
    assert lines[0] == f'  File "{tmp_path / "prog.r2py"}", line 2'
    assert lines[1].strip() == "def f((a, b)):"
    assert lines[-1].startswith("SyntaxError: ")


def test_a_cache_directory_that_cannot_be_made_is_skipped_silently(tmp_path):
    (tmp_path / "cache").write_text("a file where the cache directory would go")
    result = run(tmp_path, "py2_constructs.r2py")
    assert result.returncode == 0
    assert result.stderr == b""
    assert result.stdout.decode() == CONSTRUCTS_OUTPUT
