"""Fixtures of the server's tests."""
import pytest


@pytest.fixture()
def client(tiny_pipeline):
    """The app in a test client, its worker running (FastAPI is optional: skipped without it)."""
    testclient = pytest.importorskip("fastapi.testclient")
    from gouache.serve.app import create_app

    with testclient.TestClient(create_app(tiny_pipeline)) as c:
        yield c
