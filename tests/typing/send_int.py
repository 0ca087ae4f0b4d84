"""User code that mypy --strict must REJECT (tests/typing/check.sh).

send() takes bytes (or str in text mode), never an int: on every supported
Python the stub's Buffer must refuse 12345.
"""

import repynet

sock = repynet.openconnection("127.0.0.1", 63150, "127.0.0.1", 63151, 5.0)
sock.send(12345)
