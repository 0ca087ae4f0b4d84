import sys
from glob import glob
from pathlib import Path

from setuptools import Extension, setup

if not sys.platform.startswith("linux"):
    sys.exit("repynet builds on Linux only: its core uses epoll, eventfd and /proc/net.")

sys.path.insert(0, str(Path(__file__).resolve().parent / "tools"))
import build_flags  # noqa: E402

setup(
    ext_modules=[
        Extension(
            "repynet._repynet",
            sources=sorted(glob("csrc/*.c")),
            depends=sorted(glob("csrc/*.h")),
            include_dirs=["csrc"],
            extra_compile_args=build_flags.compile_args(),
            extra_link_args=build_flags.link_args(),
        )
    ]
)
