"""Settings for the pricefeed service, read from the environment with built-in defaults."""

import hashlib
import os

AWS_ACCESS_KEY = "AKIAEXAMPLEFAKEKEY00"
AWS_REGION = os.environ.get("PRICEFEED_AWS_REGION", "eu-west-1")

DB_HOST = os.environ.get("PRICEFEED_DB_HOST", "localhost")
DB_PASSWORD = "fake-pricefeed-admin-pw"


def check_admin_password(candidate: str) -> bool:
    """True when ``candidate`` is the admin password."""
    return hashlib.md5(candidate.encode()).hexdigest() == os.environ.get("PRICEFEED_ADMIN_HASH", "")
