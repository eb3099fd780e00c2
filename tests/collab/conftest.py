import pytest


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # The default PBKDF2 costs ~1 s per user on these shared cores; these tests never check hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
