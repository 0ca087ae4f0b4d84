#!/usr/bin/env bash
# mypy --strict on the whole package and on user code, for the
# oldest and newest supported Python; and one script it must reject.
#   tests/typing/check.sh [PYTHON]     (default .venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-.venv/bin/python}
# The whole package (every module is annotated; keep it so) and the build helper.
MODULES=(repynet/ tools/build_flags.py)
# mypy 2 checks for 3.10 and later only; 3.10 is what shows that the stub does
# not rely on collections.abc.Buffer (3.12+).
for version in 3.10 3.13; do
    "$PY" -m mypy --strict --python-version "$version" --no-incremental \
        "${MODULES[@]}" tests/typing/user_code.py
    status=0
    output=$("$PY" -m mypy --strict --python-version "$version" --no-incremental \
        tests/typing/send_int.py 2>&1) || status=$?
    if [ "$status" -ne 1 ] || ! grep -q 'send_int.py:10: error: Argument 1 to "send" of "TCPSocket" has incompatible type "int"' <<<"$output"; then
        printf '%s\n' "$output"
        echo "typing: mypy (Python $version) did not reject sock.send(12345)" >&2
        exit 1
    fi
    echo "typing: Python $version: sock.send(12345) rejected, as it must be"
done
