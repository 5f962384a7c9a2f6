from __future__ import annotations

import os
import sys
from typing import Any, Iterator, List

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fakes import FakeBurnrate, FakeProvider  # noqa: E402

from burnrate import Burnrate  # noqa: E402

# never let a developer's environment point the tests at a real server
for _k in ("BURNRATE_URL", "BURNRATE_API_KEY", "BURNRATE_KEY", "BURNRATE_ENVIRONMENT", "BURNRATE_DATA_MODE",
           "BURNRATE_PSEUDONYMIZE_SECRET", "BURNRATE_DISABLED"):
    os.environ.pop(_k, None)


@pytest.fixture(scope="session")
def _provider_server() -> Iterator[FakeProvider]:
    p = FakeProvider()
    yield p
    p.close()


@pytest.fixture
def provider(_provider_server: FakeProvider) -> Iterator[FakeProvider]:
    _provider_server.reset()
    yield _provider_server
    _provider_server.reset()


@pytest.fixture
def ingest() -> Iterator[FakeBurnrate]:
    s = FakeBurnrate()
    yield s
    s.close()


@pytest.fixture
def make_br() -> Iterator[Any]:
    made: List[Burnrate] = []

    def make(url: str, **kw: Any) -> Burnrate:
        kw.setdefault("api_key", "test-ingest-key")
        kw.setdefault("flush_interval", 0.02)
        br = Burnrate(url=url, **kw)
        made.append(br)
        return br

    yield make
    for br in made:
        br.close(timeout=0.5)


@pytest.fixture
def br(make_br: Any, ingest: FakeBurnrate) -> Burnrate:
    return make_br(ingest.url)
