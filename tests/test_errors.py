"""The Repy exception hierarchy (spec section 5, D7, D9) and its C registry."""

import builtins
import errno

import pytest

import repynet
from repynet import _repynet, errors

HIERARCHY = {
    "RepyException": "Exception",
    "RepyArgumentError": "RepyException",
    "TimeoutError": "RepyException",
    "CodeUnsafeError": "RepyException",
    "ContextUnsafeError": "RepyException",
    "ResourceUsageError": "RepyException",
    "ResourceExhaustedError": "ResourceUsageError",
    "ResourceForbiddenError": "ResourceUsageError",
    "FileError": "RepyException",
    "FileNotFoundError": "FileError",
    "FileInUseError": "FileError",
    "SeekPastEndOfFileError": "FileError",
    "FileClosedError": "FileError",
    "LockDoubleReleaseError": "RepyException",
    "NetworkError": "RepyException",
    "NetworkAddressError": "NetworkError",
    "AlreadyListeningError": "NetworkError",
    "DuplicateTupleError": "NetworkError",
    "CleanupInProgressError": "NetworkError",
    "InternetConnectivityError": "NetworkError",
    "AddressBindingError": "NetworkError",
    "ConnectionRefusedError": "NetworkError",
    "LocalIPChanged": "NetworkError",
    "SocketClosedLocal": "NetworkError",
    "SocketClosedRemote": "NetworkError",
    "SocketWouldBlockError": "NetworkError",
    "TCPServerSocketInvalidError": "NetworkError",
}

NOT_EXPORTED = {
    "InternalRepyError": "Exception",
    "SafeException": "RepyException",
    "CheckNodeException": "SafeException",
    "CheckStrException": "SafeException",
    "RunBuiltinException": "SafeException",
}


def _class(name):
    return builtins.Exception if name == "Exception" else getattr(errors, name)


@pytest.mark.parametrize("name,parent", sorted({**HIERARCHY, **NOT_EXPORTED}.items()))
def test_every_class_has_its_documented_parent(name, parent):
    cls = getattr(errors, name)
    assert cls.__bases__ == (_class(parent),)


def test_exactly_the_27_documented_names_are_exported():
    assert sorted(errors.__all__) == sorted(HIERARCHY)
    assert len(errors.__all__) == 27
    for name in HIERARCHY:
        assert getattr(repynet, name) is getattr(errors, name)
    for name in NOT_EXPORTED:
        assert name not in errors.__all__


@pytest.mark.parametrize("name", ["TimeoutError", "ConnectionRefusedError", "FileNotFoundError"])
def test_shadowed_builtin_names_are_repy_classes_only(name):
    repy_cls = getattr(errors, name)
    builtin_cls = getattr(builtins, name)
    assert repy_cls is not builtin_cls
    assert not issubclass(repy_cls, OSError)
    assert not issubclass(builtin_cls, repy_cls)
    assert issubclass(repy_cls, errors.RepyException)


def test_timeout_is_not_a_network_error():
    assert not issubclass(errors.TimeoutError, errors.NetworkError)


def test_argument_and_forbidden_errors_sit_where_the_code_puts_them():
    # The original docstrings claim otherwise (spec section 5).
    assert not issubclass(errors.RepyArgumentError, errors.NetworkError)
    assert issubclass(errors.ResourceForbiddenError, errors.ResourceUsageError)


def test_internal_error_is_not_catchable_as_repy_exception():
    assert not issubclass(errors.InternalRepyError, errors.RepyException)
    assert repynet.InternalRepyError is errors.InternalRepyError


def test_bodies_define_no_python_init_or_str():
    # C raises these classes; a Python __init__ would run a Python frame.
    for name in [*HIERARCHY, *NOT_EXPORTED]:
        cls = getattr(errors, name)
        assert "__init__" not in vars(cls) and "__str__" not in vars(cls)
        assert cls.__module__ == "repynet.errors"


# --- the C side: registry and the one errno table (D8) ----------------------

E = errors


@pytest.mark.parametrize(
    "call,err,expected",
    [
        ("connect", errno.ECONNREFUSED, E.ConnectionRefusedError),
        ("connect", errno.ECONNABORTED, E.ConnectionRefusedError),
        ("connect", errno.EISCONN, E.DuplicateTupleError),
        ("connect", errno.ECONNRESET, E.ConnectionRefusedError),  # D29
        ("connect", errno.EPIPE, E.ConnectionRefusedError),  # D29
        ("connect", errno.ENETUNREACH, E.InternetConnectivityError),
        ("connect", errno.EHOSTUNREACH, E.InternetConnectivityError),
        ("connect", errno.ENETDOWN, E.InternetConnectivityError),
        ("connect", errno.EINPROGRESS, "retry"),
        ("connect", errno.EADDRINUSE, "conflict"),
        ("connect", errno.EADDRNOTAVAIL, "conflict"),
        ("connect", errno.EACCES, E.InternalRepyError),
        ("sendmessage", errno.EADDRINUSE, E.DuplicateTupleError),
        ("sendmessage", errno.EADDRNOTAVAIL, E.AddressBindingError),
        ("sendmessage", errno.ENETUNREACH, E.InternetConnectivityError),
        ("sendmessage", errno.EACCES, E.InternalRepyError),
        ("listen_udp", errno.EADDRINUSE, "conflict"),
        ("listen_udp", errno.EADDRNOTAVAIL, E.AddressBindingError),
        ("listen_tcp", errno.EADDRINUSE, "conflict"),
        ("listen_tcp", errno.EADDRNOTAVAIL, E.AddressBindingError),
        ("listen_tcp", errno.EACCES, E.InternalRepyError),
        ("stream_io", errno.EAGAIN, E.SocketWouldBlockError),
        ("stream_io", errno.ECONNRESET, E.SocketClosedRemote),
        ("stream_io", errno.EPIPE, E.SocketClosedRemote),
        ("stream_io", errno.EINVAL, E.SocketClosedLocal),
        ("accept", errno.EAGAIN, E.SocketWouldBlockError),
        ("accept", errno.ECONNABORTED, E.SocketWouldBlockError),
        ("accept", errno.EMFILE, E.SocketClosedLocal),
        ("getmessage", errno.EAGAIN, E.SocketWouldBlockError),
        ("getmessage", errno.ECONNREFUSED, E.SocketClosedLocal),
        ("resolve", errno.EAGAIN, E.NetworkAddressError),
    ],
)
def test_errno_table(call, err, expected):
    assert _repynet._errno_class(call, err) is expected or \
        _repynet._errno_class(call, err) == expected


@pytest.mark.parametrize(
    "err,group",
    [(errno.EADDRINUSE, "in-use"), (errno.EADDRNOTAVAIL, "unavailable"),
     (errno.ENETDOWN, "net-down"), (errno.ECONNREFUSED, "refused"),
     (errno.ECONNABORTED, "aborted"), (errno.EISCONN, "already-connected"),
     (errno.EWOULDBLOCK, "recoverable"), (errno.EBADF, "terminated"),
     (errno.EPERM, "other")],
)
def test_errno_groups(err, group):
    assert _repynet._errno_group(err) == group


def test_registry_rejects_non_exception_classes():
    class Namespace:
        pass

    ns = Namespace()
    for name in dir(errors):
        setattr(ns, name, getattr(errors, name))
    ns.SocketClosedLocal = int
    with pytest.raises(TypeError):
        _repynet._register_exceptions(ns)
    # The registry is unchanged after a refused registration.
    assert _repynet._errno_class("stream_io", errno.EINVAL) is errors.SocketClosedLocal


def test_address_parsing_raises_repy_argument_error():
    assert _repynet._parse_address("0::1") == (10, "::1")
    assert _repynet._parse_address("127.0.0.1") == (2, "127.0.0.1")
    for bad in ["127.0.0.010", "::", "ff02::1", "1.2.3", b"127.0.0.1", 127, "\udcff",
                "127.0.0.1\x00", "x" * 10000]:
        with pytest.raises(errors.RepyArgumentError):
            _repynet._parse_address(bad)


def test_str_subclass_is_read_by_value_not_by_str():
    class Tricky(str):
        def __str__(self):
            return "8.8.8.8"

    assert _repynet._parse_address(Tricky("127.0.0.1")) == (2, "127.0.0.1")
