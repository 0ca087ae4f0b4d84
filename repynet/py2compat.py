"""Repy source to code objects: Python 2 source translated with fissix, cached.

Real Repy programs and the Seattle libraries are Python 2.7 source.  This
module compiles a program or a dylink module for Python 3 so that what the
Repy subset relies on keeps its Python 2 meaning:

- fissix (the maintained fork of lib2to3) parses the source with its Python 2
  grammar and applies the fixers in ``_FIXERS``: ``except X, e``,
  ``raise E, msg``, the print statement, backquotes, ``<>``, long and octal
  literals, ``xrange``, ``has_key``, ``iteritems`` and ``keys()`` whose result
  is indexed or sorted, and more.  Only fixers that keep every statement on
  its line are used, so tracebacks point at the user's lines.
- ``/`` then becomes a call of ``_py2_divide`` (an AST rewrite, which keeps
  line numbers too), which floors when both operands are ints.
- the code runs with ``python2_builtins()``: Python 3's builtins plus the
  Python 2 names Repy code uses (``long``, ``unicode``, ``reduce``, ``cmp``...)
  and a ``print`` with the print statement's soft-space rule.

Python 2 ``str`` stays Python 3 ``str``: the runner's network API is in
text mode (decisions D1/D2), one character a byte.

``--source auto`` (the default): a source that parses as Python 2 runs with
its Python 2 meaning; one that parses only as Python 3 runs as Python 3.

Translating costs tens of milliseconds a module, so the resulting code
objects are cached in a per-user directory (mode 0700) keyed by a hash of
the source, the file name, the language asked for and the translator's and
Python's versions.  A cache directory owned by another user or writable by
group or others is refused: code found there would run as the program.
"""

from __future__ import annotations

import ast
import builtins
import decimal
import functools
import hashlib
import importlib.util
import io
import marshal
import math
import os
import shutil
import stat
import sys
import tempfile
import tokenize
import types
from dataclasses import dataclass
from typing import Any, Callable

# Bumped whenever the translation changes, so old cache entries are unused.
TRANSLATOR_VERSION = "3"
SOURCE_LANGUAGES = ("auto", "py2", "py3")

# Every fixer here rewrites within a statement's lines.  Left out, because
# they add lines (imports, statements) or rename what Repy code cannot
# import anyway: tuple_params, reduce, intern, itertools*, operator, sorted,
# imports*, urllib, renames, metaclass, execfile, exitfunc, future, idioms,
# input, raw_input, ws_comma, set_literal, paren, isinstance.
_FIXERS = tuple(f"fissix.fixes.fix_{name}" for name in (
    "apply", "asserts", "basestring", "buffer", "dict", "except", "exec",
    "filter", "funcattrs", "getcwdu", "has_key", "long", "map", "methodattrs",
    "ne", "next", "nonzero", "numliterals", "print", "raise", "repr",
    "standarderror", "sys_exc", "throw", "types", "unicode", "xrange",
    "xreadlines", "zip",
))

_DIVIDE = "_py2_divide"
_DIVISOR = "_py2_divisor"


class CompileOverflowError(Exception):
    """The source is too deeply nested for the translator or the compiler."""


@dataclass(frozen=True)
class CompiledSource:
    """A code object and the language it was compiled as (py2 or py3)."""

    code: types.CodeType
    language: str


# --- compiling ----------------------------------------------------------------

def compile_repy(source: bytes, filename: str, language: str = "auto",
                 cache: TranslationCache | None = None) -> CompiledSource:
    """Compiles Repy source as ``language`` (auto, py2 or py3).

    Raises SyntaxError or ValueError as ``compile`` does, with the user's
    line number and text, and CompileOverflowError for a RecursionError or
    MemoryError from the translator or the compiler.
    """
    if language not in SOURCE_LANGUAGES:
        raise ValueError(f"unknown source language {language!r}")
    key = _cache_key(source, filename, language)
    if cache is not None:
        cached = cache.load(key)
        if cached is not None:
            return cached
    try:
        compiled = _compile_uncached(source, filename, language,
                                     cache.directory if cache is not None else None)
    except (RecursionError, MemoryError) as err:
        raise CompileOverflowError(
            f"{filename}: too deeply nested to compile ({type(err).__name__})") from None
    except (SyntaxError, ValueError) as err:
        # Raised from here, without the parser's and the translator's frames.
        raise err.with_traceback(None) from None
    if cache is not None:
        cache.store(key, compiled)
    return compiled


def _compile_uncached(source: bytes, filename: str, language: str,
                      grammar_directory: str | None) -> CompiledSource:
    text = _with_includes(_decode(source, filename))
    if language == "py3":
        return CompiledSource(_compile_py3(text, filename), "py3")
    try:
        translated = _translate(text, grammar_directory)
    except _Python2ParseError as py2_error:
        if language == "py2":
            raise py2_error.syntax_error(filename, text) from None
        try:
            return CompiledSource(_compile_py3(text, filename), "py3")
        except SyntaxError as py3_error:
            # Report the error of the reading that got further: a Python 2
            # program with a typo on line 40 fails Python 3 on line 3.
            if py2_error.lineno > (py3_error.lineno or 0):
                raise py2_error.syntax_error(filename, text) from None
            raise
    try:
        tree = ast.parse(translated, filename)
    except SyntaxError as err:
        _show_original_line(err, text)
        raise
    if not _imports_future_division(tree):
        tree = _Python2Division().visit(tree)
    return CompiledSource(compile(tree, filename, "exec", dont_inherit=True), "py2")


def _compile_py3(text: str, filename: str) -> types.CodeType:
    code: types.CodeType = compile(text, filename, "exec", dont_inherit=True)
    return code


def _decode(source: bytes, filename: str) -> str:
    """The source text, honouring a BOM or a coding cookie (default UTF-8)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
        return source.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as err:
        raise SyntaxError(f"cannot decode the source: {err}", (filename, 1, 1, "")) from None


def _with_includes(text: str) -> str:
    """dylink's ``include NAME`` lines as symbol imports, on the same line.

    ``include`` is a preprocessor line, not Python: like dylink, a line that
    starts with ``include `` at column 0 imports the module's symbols with
    the importer's ``callfunc``.
    """
    if "include " not in text:
        return text
    lines = text.splitlines(keepends=True)
    for number, line in enumerate(lines):
        if line.startswith("include "):
            body = line.rstrip("\r\n")
            ending = line[len(body):]
            # The name is the first word: a trailing comment is dropped.
            words = body[len("include "):].split()
            module = words[0] if words else ""
            lines[number] = f"dy_import_module_symbols({module!r}, callfunc){ending}"
    return "".join(lines)


# --- Python 2 -------------------------------------------------------------------

class _Python2ParseError(Exception):
    """The source is not Python 2 (as fissix's grammar reads it)."""

    def __init__(self, message: str, lineno: int, column: int) -> None:
        super().__init__(message)
        self.lineno = lineno
        self.column = column

    def syntax_error(self, filename: str, text: str) -> SyntaxError:
        message = f"{self.args[0]} (Python 2 source)"
        error = SyntaxError(message, (filename, self.lineno, self.column + 1,
                                      _source_line(text, self.lineno)))
        # CPython 3.9's SyntaxError rewrites the message of a line starting
        # with `print ` ("Missing parentheses ..."): set it back.
        error.msg = message
        return error


def _source_line(text: str, lineno: int | None) -> str:
    """Line ``lineno`` (from 1) of ``text`` as Python counts lines; "" if none."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[lineno - 1] if lineno is not None and 0 < lineno <= len(lines) else ""


@functools.lru_cache(maxsize=1)
def _refactoring_tool(grammar_directory: str | None) -> Any:
    """fissix's refactoring tool with ``_FIXERS``, its grammar tables kept safe.

    fissix imports on first use (a warm cache never needs it).  It keeps
    its grammar tables as pickles (loading one runs code) in a directory of
    its own made with the default umask; they go in our checked directory
    instead, or, without one, in a private temporary directory removed at once.
    """
    from pathlib import Path

    import fissix  # type: ignore[import-untyped]
    private_directory = None
    if grammar_directory is None:
        private_directory = grammar_directory = tempfile.mkdtemp(prefix="repynet-fissix-")
    fissix.CACHE_DIR = Path(grammar_directory, f"fissix-{fissix.__version__}")
    try:
        from fissix.fixes.fix_unicode import FixUnicode  # type: ignore[import-untyped]
        from fissix.refactor import RefactoringTool  # type: ignore[import-untyped]

        class FixTextLiterals(FixUnicode):  # type: ignore[misc]
            """fix_unicode, but ``"\\u00e9"`` keeps its Python 3 meaning (one character).

            fix_unicode would double the backslash to keep Python 2's byte-string
            meaning; Repy strings are text here, and a program that wrote
            ``\\u`` in a str meant the character.
            """

            def start_tree(self, tree: Any, filename: str) -> None:
                super().start_tree(tree, filename)
                self.unicode_literals = True

        class RepyRefactoringTool(RefactoringTool):  # type: ignore[misc]
            def get_fixers(self) -> tuple[list[Any], list[Any]]:
                def text_literals(fixers: list[Any]) -> list[Any]:
                    return [FixTextLiterals(fixer.options, fixer.log)
                            if isinstance(fixer, FixUnicode) else fixer for fixer in fixers]
                pre_order, post_order = super().get_fixers()
                return text_literals(pre_order), text_literals(post_order)

        return RepyRefactoringTool(list(_FIXERS))
    finally:
        if private_directory is not None:
            # The tables are in memory once the tool is built.
            shutil.rmtree(private_directory, ignore_errors=True)


def _translate(text: str, grammar_directory: str | None) -> str:
    """Python 2 source as Python 3 source with the same lines."""
    from fissix.pgen2.parse import ParseError  # type: ignore[import-untyped]
    from fissix.pgen2.tokenize import TokenError  # type: ignore[import-untyped]
    if not text.endswith("\n"):
        text += "\n"
    try:
        tree = _refactoring_tool(grammar_directory).refactor_string(text, "<repy>")
    except ParseError as err:
        _, (lineno, column) = err.context
        raise _Python2ParseError("invalid syntax", lineno, column) from None
    except TokenError as err:
        message, (lineno, column) = err.args
        raise _Python2ParseError(message, lineno, column) from None
    except IndentationError as err:
        raise _Python2ParseError(err.msg, err.lineno or 0, (err.offset or 1) - 1) from None
    python3_line = _python3_only_line(tree)
    if python3_line is not None:
        raise _Python2ParseError("Python 3 only syntax", python3_line, 0)
    translated: str = str(tree)
    return translated


def _python3_only_line(tree: Any) -> int | None:
    """The line of the first Python 3 construct in a fissix tree, or None.

    fissix's grammar reads both languages (all but the print and exec
    statements); source that uses one of these is not Python 2: nonlocal,
    keyword-only parameters, annotations (of parameters and variables), f-strings, async and await,
    starred targets, ``yield from``, ``raise ... from``, ``:=`` and ``@``.
    """
    from fissix.pgen2 import token  # type: ignore[import-untyped]
    from fissix.pygram import python_symbols as symbols  # type: ignore[import-untyped]
    python3_tokens = {token.RARROW, token.AWAIT, token.ASYNC, token.COLONEQUAL}
    for node in tree.pre_order():
        children = node.children
        parent_type = node.parent.type if node.parent is not None else None
        if node.type in python3_tokens or node.type in (symbols.star_expr, symbols.annassign):
            return int(node.get_lineno())
        if node.type == token.STRING and "f" in node.value[:3].lower().split("'")[0].split('"')[0]:
            return int(node.get_lineno())
        if (node.type == token.NAME and node.value == "nonlocal"
                and parent_type == symbols.global_stmt):
            return int(node.get_lineno())
        if node.type == token.NAME and node.value == "from" and parent_type in (
                symbols.raise_stmt, symbols.yield_arg):
            return int(node.get_lineno())
        if node.type == token.AT and parent_type == symbols.term:
            return int(node.get_lineno())
        if node.type == symbols.tname and len(children) == 3:
            return int(node.get_lineno())
        if node.type in (symbols.typedargslist, symbols.varargslist):
            after_star = False
            for child, following in zip(children, children[1:]):
                after_star = after_star or child.type == token.STAR
                if after_star and child.type == token.COMMA \
                        and following.type != token.DOUBLESTAR:
                    return int(node.get_lineno())
    return None


def _show_original_line(err: SyntaxError, text: str) -> None:
    err.text = _source_line(text, err.lineno) + "\n"


def _imports_future_division(tree: ast.Module) -> bool:
    return any(isinstance(node, ast.ImportFrom) and node.module == "__future__"
               and any(alias.name == "division" for alias in node.names)
               for node in tree.body)


class _Python2Division(ast.NodeTransformer):
    """``a / b`` as ``_py2_divide(a, b)``; ``x /= b`` keeps Python 2's meaning too."""

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.op, ast.Div):
            return node
        call = ast.Call(func=ast.Name(id=_DIVIDE, ctx=ast.Load()),
                        args=[node.left, node.right], keywords=[])
        return ast.fix_missing_locations(ast.copy_location(call, node))

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.op, ast.Div):
            return node
        if isinstance(node.target, ast.Name):
            # x /= b  ->  x = _py2_divide(x, b): the target is evaluated once.
            load = ast.copy_location(ast.Name(id=node.target.id, ctx=ast.Load()), node.target)
            call = ast.copy_location(
                ast.Call(func=ast.Name(id=_DIVIDE, ctx=ast.Load()),
                         args=[load, node.value], keywords=[]), node.value)
            return ast.fix_missing_locations(
                ast.copy_location(ast.Assign(targets=[node.target], value=call), node))
        # obj.x /= b, a[i] /= b: the divisor's __rtruediv__ floors for ints,
        # and the target expression is still evaluated once.
        node.value = ast.fix_missing_locations(ast.copy_location(
            ast.Call(func=ast.Name(id=_DIVISOR, ctx=ast.Load()),
                     args=[node.value], keywords=[]), node.value))
        return node


def _py2_divide(left: Any, right: Any) -> Any:
    """Python 2's ``/``: floor division for two ints, true division otherwise."""
    if isinstance(left, int) and isinstance(right, int):
        return left // right
    return left / right


class _Python2Divisor:
    """The right side of a translated ``/=`` whose target is not a plain name."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __rtruediv__(self, left: Any) -> Any:
        return _py2_divide(left, self.value)


def _py2_round(number: Any, ndigits: int = 0) -> Any:
    """Python 2's round(): halves away from zero, on the float's exact value; a float."""
    if isinstance(number, bool) or not isinstance(number, (int, float)) \
            or not isinstance(ndigits, int) or isinstance(number, float) \
            and not math.isfinite(number):
        return builtins.round(number, ndigits)
    if ndigits > 22:  # finer than a double's digits: unchanged, as in Python 2
        return float(number)
    if ndigits < -308:
        return 0.0 * number
    # Enough digits for any double's integer part plus 22 decimals.
    context = decimal.Context(prec=400, rounding=decimal.ROUND_HALF_UP)
    try:
        rounded = context.quantize(decimal.Decimal(number), decimal.Decimal(1).scaleb(-ndigits))
    except decimal.InvalidOperation:
        raise OverflowError("number too large to round as a float") from None
    return float(rounded)


def _cmp(left: Any, right: Any) -> int:
    return int((left > right) - (left < right))


def python2_builtins(print_function: Callable[..., None]) -> dict[str, Any]:
    """The builtins Python 2 code runs with (a new dict for each program).

    ``print_function`` replaces ``print``: it writes the way the print
    statement did (see ``Program.print_statement``).
    """
    names = dict(vars(builtins))
    names.update(
        long=int, unicode=str, basestring=str, unichr=chr, xrange=range,
        reduce=functools.reduce, cmp=_cmp, intern=sys.intern, round=_py2_round,
        print=print_function,
    )
    names[_DIVIDE] = _py2_divide
    names[_DIVISOR] = _Python2Divisor
    return names


# --- the cache ------------------------------------------------------------------

def _cache_key(source: bytes, filename: str, language: str) -> str:
    digest = hashlib.sha256()
    for part in (TRANSLATOR_VERSION.encode(), _fissix_version().encode(),
                 importlib.util.MAGIC_NUMBER, language.encode(),
                 # As given: it is the code's co_filename.
                 filename.encode("utf-8", "surrogateescape")):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    digest.update(source)
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _fissix_version() -> str:
    """fissix's version file as text, read without importing fissix (or importlib.metadata)."""
    spec = importlib.util.find_spec("fissix")
    if spec is None or not spec.submodule_search_locations:
        return "absent"
    for directory in spec.submodule_search_locations:
        try:
            with open(os.path.join(directory, "__version__.py"), encoding="utf-8") as stream:
                return stream.read()
        except OSError:
            continue
    return "unknown"


def default_cache_directory() -> str:
    """``$XDG_CACHE_HOME/repynet``, else ``~/.cache/repynet``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "repynet")


class CacheDirectoryError(Exception):
    """A cache directory that must not be used."""


def check_cache_directory(path: str) -> None:
    """Creates ``path`` (mode 0700) if missing; raises CacheDirectoryError if unsafe.

    Safe means: a real directory (not a symbolic link), owned by this user,
    not writable by group or others.  OSError if it cannot be made or read.
    """
    os.makedirs(path, mode=0o700, exist_ok=True)
    status = os.lstat(path)
    if not stat.S_ISDIR(status.st_mode):
        raise CacheDirectoryError(f"{path} is not a directory")
    if status.st_uid != os.geteuid():
        raise CacheDirectoryError(f"{path} is owned by uid {status.st_uid}, not by this user")
    if status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheDirectoryError(
            f"{path} is writable by group or others (mode {stat.S_IMODE(status.st_mode):04o})")


class TranslationCache:
    """Compiled code on disk, one file per key, written atomically."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    @classmethod
    def for_user(cls, warn: Callable[[str], None]) -> TranslationCache | None:
        """The user's cache, or None: after one ``warn`` if its directory is unsafe.

        A directory that cannot be made (a read-only home) only costs time:
        no warning.
        """
        directory = default_cache_directory()
        try:
            check_cache_directory(directory)
        except CacheDirectoryError as err:
            warn(f"repynet: not caching translated code: {err}")
            return None
        except OSError:
            return None
        return cls(directory)

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.code")

    def load(self, key: str) -> CompiledSource | None:
        try:
            with open(self._path(key), "rb") as stream:
                language, code = marshal.load(stream)
        except (OSError, EOFError, ValueError, TypeError):
            return None
        if language not in ("py2", "py3") or not isinstance(code, types.CodeType):
            return None
        return CompiledSource(code, language)

    def store(self, key: str, compiled: CompiledSource) -> None:
        """Writes the entry; a cache that cannot be written is only slower."""
        try:
            descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        except OSError:
            return
        try:
            with os.fdopen(descriptor, "wb") as stream:
                marshal.dump((compiled.language, compiled.code), stream)
            os.replace(temporary, self._path(key))
        except (OSError, ValueError):  # ValueError: too deeply nested to marshal
            try:
                os.unlink(temporary)
            except OSError:
                pass
