"""avala-mock: an offline, stateful simulator of the Avala REST API and a contract-test harness.

The repository's top-level folders are this package's subpackages: ``avala_mock.mock_server`` (HTTP
façade), ``avala_mock.simulators`` (the backend), ``avala_mock.fixtures`` (worlds and scenarios),
``avala_mock.contracts`` (the harness). Importing this package imports nothing else, so the pytest
plugin and the CLI stay cheap until a command or fixture needs more.
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    if name == "__version__":  # read lazily: importlib.metadata costs a few ms nobody else needs to pay
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("avala-mock")
        except PackageNotFoundError:
            return "0+unknown"
    raise AttributeError(name)
