"""Shared data for the workflow tests: the apps' gallery, run and index (built once per session)."""

from __future__ import annotations

import pytest

from tests.browser.support import AppData, app_data


@pytest.fixture(scope="session")
def apps_data(tmp_path_factory: pytest.TempPathFactory) -> AppData:
    return app_data(tmp_path_factory.getbasetemp())
