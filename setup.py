"""Build the optional C fast paths (segment, loader, exec); metadata lives in pyproject.toml.

``optional=True``: where no C compiler is available the package installs without it and
the pure-Python reference code is used instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "tradingd.segment._fastpath",
            ["tradingd/segment/_fastpath.c"],
            include_dirs=["tools/c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra",
                                "-Wno-missing-field-initializers"],
            optional=True,
        ),
        Extension(
            "tradingd.producer.loader._csvfast",
            ["tradingd/producer/loader/_csvfast.c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra"],
            optional=True,
        ),
        Extension(
            "tradingd.exec._execfast",
            ["tradingd/exec/_execfast.c"],
            include_dirs=["tools/c"],
            extra_compile_args=["-O2", "-std=gnu11", "-Wall", "-Wextra",
                                "-Wno-missing-field-initializers"],
            optional=True,
        ),
    ]
)
