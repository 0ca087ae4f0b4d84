"""The Repy exception hierarchy (spec section 5).

The classes have plain bodies, so raising one from C runs no Python frame.
Three names shadow Python builtins on purpose (spec D7): ``TimeoutError``,
``ConnectionRefusedError`` and ``FileNotFoundError`` here are Repy classes
that derive only from :class:`RepyException`; write ``builtins.TimeoutError``
when the builtin is meant.  ``InternalRepyError`` is what the original
sandbox treated as fatal; repynet raises it instead of ending the process
(D9) and it is deliberately *not* a :class:`RepyException`.
"""

__all__ = [
    "RepyException",
    "RepyArgumentError",
    "TimeoutError",
    "CodeUnsafeError",
    "ContextUnsafeError",
    "ResourceUsageError",
    "ResourceExhaustedError",
    "ResourceForbiddenError",
    "FileError",
    "FileNotFoundError",
    "FileInUseError",
    "SeekPastEndOfFileError",
    "FileClosedError",
    "LockDoubleReleaseError",
    "NetworkError",
    "NetworkAddressError",
    "AlreadyListeningError",
    "DuplicateTupleError",
    "CleanupInProgressError",
    "InternetConnectivityError",
    "AddressBindingError",
    "ConnectionRefusedError",
    "LocalIPChanged",
    "SocketClosedLocal",
    "SocketClosedRemote",
    "SocketWouldBlockError",
    "TCPServerSocketInvalidError",
]


class InternalRepyError(Exception):
    """A failure the original sandbox treated as fatal; the OS error is the cause."""


class RepyException(Exception):
    """Base of every exception Repy code may catch."""


class RepyArgumentError(RepyException):
    """An argument has the wrong type or an invalid value."""


class TimeoutError(RepyException):  # noqa: A001 - Repy's name (D7)
    """An operation did not complete within its timeout."""


class CodeUnsafeError(RepyException):
    """Code failed the sandbox's safety check."""


class ContextUnsafeError(RepyException):
    """A namespace handed to the sandbox is unsafe."""


class ResourceUsageError(RepyException):
    """Base of the resource restriction errors."""


class ResourceExhaustedError(ResourceUsageError):
    """A counted resource (sockets, events) is used up."""


class ResourceForbiddenError(ResourceUsageError):
    """The restrictions do not allow this resource (a port, a local IP)."""


class FileError(RepyException):
    """Base of the file errors."""


class FileNotFoundError(FileError):  # noqa: A001 - Repy's name (D7)
    """The file does not exist."""


class FileInUseError(FileError):
    """The file is already open."""


class SeekPastEndOfFileError(FileError):
    """A seek went past the end of the file."""


class FileClosedError(FileError):
    """The file is closed."""


class SafeException(RepyException):
    """Base of the safety checker's errors (not exported)."""


class CheckNodeException(SafeException):
    """An unsafe syntax node (not exported)."""


class CheckStrException(SafeException):
    """An unsafe string (not exported)."""


class RunBuiltinException(SafeException):
    """An unsafe builtin call (not exported)."""


class LockDoubleReleaseError(RepyException):
    """A lock was released while not held."""


class NetworkError(RepyException):
    """Base of the network errors."""


class NetworkAddressError(NetworkError):
    """A name could not be resolved."""


class AlreadyListeningError(NetworkError):
    """A listener already holds this local address and port."""


class DuplicateTupleError(NetworkError):
    """The same (local, remote) address tuple is already in use."""


class CleanupInProgressError(NetworkError):
    """The local port is still held by a socket being cleaned up."""


class InternetConnectivityError(NetworkError):
    """The network is down or the destination is unreachable."""


class AddressBindingError(NetworkError):
    """The local IP is not an address of this host."""


class ConnectionRefusedError(NetworkError):  # noqa: A001 - Repy's name (D7)
    """The destination refused the connection."""


class LocalIPChanged(NetworkError):
    """Exported for compatibility; never raised."""


class SocketClosedLocal(NetworkError):
    """The socket was closed on this side."""


class SocketClosedRemote(NetworkError):
    """The peer closed the connection."""


class SocketWouldBlockError(NetworkError):
    """The operation would block; try again later."""


class TCPServerSocketInvalidError(NetworkError):
    """Exported for compatibility; never raised."""
