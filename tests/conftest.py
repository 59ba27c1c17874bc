"""Fixtures every test suite shares: a real Redis server on a free loopback port."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
import redis
from hypothesis import settings

from voicectl.redis_server import RedisProcess, free_port

# Property tests run a few hundred cases in `make test`; a campaign runs many more:
#   HYPOTHESIS_PROFILE=campaign .venv/bin/pytest tests/dm/test_extract_properties.py
settings.register_profile("campaign", max_examples=5000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisProcess]:
    with RedisProcess(free_port()) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisProcess) -> str:
    """A flushed database on the session's Redis server."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


def pytest_unconfigure(config: pytest.Config) -> None:
    # llama-cpp-python opens /dev/null twice at import and never closes it; close it
    # here so the interpreter's exit does not print ResourceWarnings after the run.
    utils = sys.modules.get("llama_cpp._utils")
    if utils is not None:
        utils.outnull_file.close()
        utils.errnull_file.close()
