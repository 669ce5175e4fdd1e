"""Browser tests: pages of metalab opened in headless Chromium (see conftest.py)."""
