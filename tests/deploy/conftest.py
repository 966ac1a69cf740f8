"""Fixtures: the apps' shared test data (a gallery, a run and its index)."""

from __future__ import annotations

import pytest

from tests.browser.support import AppData, app_data


@pytest.fixture(scope="session")
def apps_data(tmp_path_factory: pytest.TempPathFactory) -> AppData:
    return app_data(tmp_path_factory.getbasetemp())
