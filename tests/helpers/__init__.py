"""Helpers shared by the tests (import them as ``tests.helpers.<module>``); they hold no tests."""
