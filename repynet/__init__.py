"""repynet: the Repy V2 network API for Python 3, with a C core.

``import repynet`` gives the network calls and the Repy exception classes;
see the documentation in ``docs/`` for the API reference.
"""

from . import _repynet, errors
from .errors import (  # the 27 documented Repy names, listed once in errors.__all__
    RepyException,
    RepyArgumentError,
    TimeoutError,
    CodeUnsafeError,
    ContextUnsafeError,
    ResourceUsageError,
    ResourceExhaustedError,
    ResourceForbiddenError,
    FileError,
    FileNotFoundError,
    FileInUseError,
    SeekPastEndOfFileError,
    FileClosedError,
    LockDoubleReleaseError,
    NetworkError,
    NetworkAddressError,
    AlreadyListeningError,
    DuplicateTupleError,
    CleanupInProgressError,
    InternetConnectivityError,
    AddressBindingError,
    ConnectionRefusedError,
    LocalIPChanged,
    SocketClosedLocal,
    SocketClosedRemote,
    SocketWouldBlockError,
    TCPServerSocketInvalidError,
    InternalRepyError,
)

__version__ = "0.1.0"

_repynet._register_exceptions(errors)

__all__ = [*errors.__all__, "InternalRepyError"]
