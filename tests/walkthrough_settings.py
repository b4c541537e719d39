"""`make run`'s settings with the test suite's fast password hasher, for the walk-through test's server
(tests/test_readme_walkthrough.py): the demo users are made and log in several times, and nothing there is
about password hashing."""

from kiosk.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
