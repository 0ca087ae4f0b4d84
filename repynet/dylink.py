"""Seattle's dylink, native: dy_import_module, dy_import_module_symbols, dy_dispatch_module.

The semantics are those of seattlelib_v2's ``dylink.r2py``:

- ``dy_import_module(name, new_callfunc="import", additional_globals=[])``
  evaluates a module once per program, in its own namespace seeded with the
  importer's Repy API (plus ``additional_globals``), its own ``mycontext``,
  ``_context`` and ``callfunc == new_callfunc``, and returns a module object
  carrying the module's globals that neither start with ``_`` nor are Repy
  API names, plus ``_context`` (the module's live globals) and ``_name``.
- ``dy_import_module_symbols(name, new_callfunc="import")`` imports the
  module and copies every global of it into the importer, except
  ``_NOT_COPIED`` and Python's own ``__dunder__`` names.
- ``dy_dispatch_module(eval_context=CHILD_CONTEXT)`` runs the program named
  by ``callargs[0]`` in ``eval_context`` with the caller's ``callfunc`` and,
  when that context shares the caller's ``callargs``, the rest of them.
  ``CHILD_CONTEXT`` is a copy of the namespace taken before it ran, with its
  own ``_context`` and an empty ``mycontext``.
- A module imported while it is being imported (a circular import) is an
  empty module object, as in dylink (and like Python's partly initialised
  module).
- A line ``include NAME`` is ``dy_import_module_symbols('NAME', callfunc)``
  (the translator rewrites it, see ``py2compat``).

Names resolve with dylink's extensions, in the directory of each program of
the dispatch chain, then each ``--lib`` directory, then each ``REPY_PATH``
entry; a program that ``dy_dispatch_module`` runs is first looked for as a
path (relative to the working directory), since it was named on the command
line.  One lock serialises imports: a module is evaluated once even when
threads import it at the same time.
"""

from __future__ import annotations

import builtins
import os
import threading
import types
from collections.abc import Iterable, Sequence
from typing import Any

from . import errors
from ._program import DISPATCH_FILENAME, Program
from .py2compat import CompiledSource, TranslationCache, compile_repy, python2_builtins

EXTENSIONS = ("", ".py", ".repy", ".py.repy", ".pp", ".r2py")
DYLINK_NAMES = ("dy_import_module", "dy_import_module_symbols", "dy_dispatch_module")
# The importer's own state, never replaced by a symbols import (dylink's list).
_NOT_COPIED = frozenset({"CHILD_CONTEXT", "_context", "callfunc", "mycontext", "HAS_DYLINK",
                         *DYLINK_NAMES})
# A program's state, as opposed to the Repy API a module is seeded with.
_PROGRAM_STATE = frozenset({"callargs", "callfunc", "mycontext", "_context", "CHILD_CONTEXT",
                            "HAS_DYLINK"})
_DISPATCH_SOURCE = "dy_dispatch_module()\n"

Namespace = dict[str, Any]


def module_name(name: str) -> str:
    """``name`` without its dylink extension (the longest that matches)."""
    for extension in sorted(EXTENSIONS, key=len, reverse=True):
        if extension and name.endswith(extension) and len(name) > len(extension):
            return name[:-len(extension)]
    return name


def names_dylink(path: str) -> bool:
    """Whether ``path`` names dylink itself (``run dylink.r2py PROGRAM ...``)."""
    return module_name(os.path.basename(path)) == "dylink"


def repy_path() -> list[str]:
    """The directories of the ``REPY_PATH`` environment variable."""
    return [entry for entry in os.environ.get("REPY_PATH", "").split(os.pathsep) if entry]


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


class ImportedModule:
    """What ``dy_import_module`` returns: a module's public globals as attributes."""

    def __init__(self, name: str, context: Namespace,
                 api_names: Iterable[str] = ()) -> None:
        skipped = frozenset(api_names)
        for attribute, value in context.items():
            if not attribute.startswith("_") and attribute not in skipped:
                setattr(self, attribute, value)
        self._name = name
        self._context = context

    def __repr__(self) -> str:
        return f"<Imported module '{self._name}'>"

    __str__ = __repr__


class Linker:
    """One program's dylink: the module cache and the search path."""

    def __init__(self, program: Program, program_path: str, language: str = "auto",
                 lib_dirs: Sequence[str] = (), cache: TranslationCache | None = None) -> None:
        self._program = program
        self._language = language
        self._cache = cache
        self._program_dirs = [os.path.dirname(program_path)]
        self._lib_dirs = list(lib_dirs) + repy_path()
        self._path = program_path
        self._api_names: frozenset[str] = frozenset(DYLINK_NAMES)
        self._imported: dict[str, ImportedModule] = {}
        self._importing: list[str] = []
        self._compiled: dict[str, tuple[CompiledSource, str]] = {}
        self._lock = threading.RLock()
        self._py2_builtins: Namespace | None = None

    # --- the program --------------------------------------------------------

    def prepare_main(self, source: bytes | None, namespace: Namespace) -> types.CodeType:
        """The program's code, with ``namespace`` made ready to run it.

        ``source`` is None when the program is dylink itself: its code is
        then a dispatch to the program named by its first argument.
        Raises as ``py2compat.compile_repy`` does.
        """
        self._api_names = frozenset(
            name for name in namespace
            if name not in _PROGRAM_STATE and not _is_dunder(name)) | frozenset(DYLINK_NAMES)
        if source is None:
            code = compile(_DISPATCH_SOURCE, DISPATCH_FILENAME, "exec", dont_inherit=True)
            self._prepare(namespace, "py3")
            return code
        compiled = compile_repy(source, self._path, self._language, self._cache)
        self._prepare(namespace, compiled.language)
        return compiled.code

    def _prepare(self, context: Namespace, language: str) -> None:
        """What dylink's namespace does before it evaluates code in ``context``."""
        context["__builtins__"] = self._builtins(language)
        child = dict(context)
        child["_context"] = child
        child["mycontext"] = {}
        context["CHILD_CONTEXT"] = child

        def dy_import_module(module: str, new_callfunc: str = "import",
                             additional_globals: Iterable[str] = ()) -> ImportedModule:
            return self.import_module(module, context, new_callfunc, additional_globals)

        def dy_import_module_symbols(module: str, new_callfunc: str = "import") -> None:
            self.import_symbols(module, context, new_callfunc)

        def dy_dispatch_module(eval_context: Namespace | None = None) -> bool:
            return self.dispatch(child if eval_context is None else eval_context, context)

        context.update(dy_import_module=dy_import_module,
                       dy_import_module_symbols=dy_import_module_symbols,
                       dy_dispatch_module=dy_dispatch_module,
                       HAS_DYLINK=True)

    def _builtins(self, language: str) -> Any:
        if language == "py3":
            return builtins
        if self._py2_builtins is None:
            self._py2_builtins = python2_builtins(self._program.print_statement)
        return self._py2_builtins

    def _evaluate(self, compiled: CompiledSource, path: str, context: Namespace) -> None:
        context["__file__"] = path
        self._prepare(context, compiled.language)
        exec(compiled.code, context)

    # --- the three calls ------------------------------------------------------

    def import_module(self, module: str, importer: Namespace, new_callfunc: str = "import",
                      additional_globals: Iterable[str] = ()) -> ImportedModule:
        """``dy_import_module``: the module object, evaluated once per program."""
        _check_name("dy_import_module", module)
        name = module_name(module)
        with self._lock:
            # dylink is built in: importing its file would run Seattle's
            # implementation over this one.
            if name in self._importing or names_dylink(name):
                return ImportedModule(name, {})
            cached = self._imported.get(name)
            if cached is not None:
                return cached
            self._importing.append(name)
            try:
                handed_on = self._api_names | frozenset(additional_globals)
                context: Namespace = {key: importer[key] for key in handed_on if key in importer}
                context["__name__"] = name
                context["_context"] = context
                context["mycontext"] = {}
                context["callfunc"] = new_callfunc
                compiled, path = self._find_compiled(name, as_path=False)
                self._evaluate(compiled, path, context)
                imported = ImportedModule(name, context, self._api_names)
                self._imported[name] = imported
                return imported
            finally:
                self._importing.remove(name)

    def import_symbols(self, module: str, importer: Namespace,
                       new_callfunc: str = "import") -> None:
        """``dy_import_module_symbols``: the module's globals copied into ``importer``."""
        _check_name("dy_import_module_symbols", module)
        imported = self.import_module(module, importer, new_callfunc)
        for symbol, value in imported._context.items():
            if symbol not in _NOT_COPIED and not _is_dunder(symbol):
                importer[symbol] = value

    def dispatch(self, eval_context: Namespace, caller: Namespace) -> bool:
        """``dy_dispatch_module``: runs ``callargs[0]``; False when there is none."""
        if not isinstance(eval_context, dict):
            raise errors.RepyArgumentError(
                f"dy_dispatch_module() needs a dict, got {type(eval_context).__name__}")
        callargs = caller.get("callargs")
        if not callargs:
            return False
        _check_name("dy_dispatch_module", callargs[0])
        compiled, path = self._find_compiled(callargs[0], as_path=True)
        directory = os.path.dirname(path)
        if directory not in self._program_dirs:
            self._program_dirs.append(directory)
        eval_context["callfunc"] = caller.get("callfunc")
        rest = callargs[1:]
        if eval_context.get("callargs") is callargs:
            eval_context["callargs"] = rest
        eval_context["__name__"] = "__main__"
        self._evaluate(compiled, path, eval_context)
        return True

    # --- finding and compiling ------------------------------------------------

    def _find_compiled(self, module: str, as_path: bool) -> tuple[CompiledSource, str]:
        name = module_name(module)
        key = f"{'path' if as_path else 'module'}:{name}"
        with self._lock:
            found = self._compiled.get(key)
            if found is None:
                path = self._find(name, as_path)
                with open(path, "rb") as stream:
                    source = stream.read()
                found = (compile_repy(source, path, self._language, self._cache), path)
                self._compiled[key] = found
            return found

    def _find(self, name: str, as_path: bool) -> str:
        # "" is the working directory (and a program's own when it has none).
        directories = list(dict.fromkeys(
            ([""] if as_path else []) + self._program_dirs + self._lib_dirs))
        for directory in directories:
            for extension in EXTENSIONS:
                candidate = os.path.join(directory, name + extension)
                if os.path.isfile(candidate):
                    return candidate
        tried = ", ".join(name + extension for extension in EXTENSIONS)
        places = ", ".join(dict.fromkeys(os.path.abspath(directory) for directory in directories))
        raise builtins.ModuleNotFoundError(
            f"dylink: cannot find module {name!r}: tried {tried} in {places}")


def _check_name(function: str, module: Any) -> None:
    if type(module) is not str:
        raise errors.RepyArgumentError(
            f"{function}() needs a module name (str), got {type(module).__name__}")
