import pytest

from fakeseam import API_KEY, FakeSeam


@pytest.fixture(scope="session")
def fake_seam():
    """Seam's fake server on a free loopback port, for the whole test session."""
    with FakeSeam() as seam:
        yield seam


@pytest.fixture
def seam_settings(settings, fake_seam):
    """Points the dashboard's Seam client at the fake server."""
    settings.SEAM_API_URL = fake_seam.url
    settings.SEAM_API_KEY = API_KEY
    return settings
