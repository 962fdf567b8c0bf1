"""bcrypt password hashes: the format nats-server checks logins against.

The config holds only hashes, never passwords, so a leaked config file does not give away
anyone's login. Cost 12 (about a quarter second here) is the default for real users; tests use
a lower cost because nats-server pays it at every connect.
"""

from __future__ import annotations

import bcrypt

DEFAULT_ROUNDS = 12


def hash_password(password: str, *, rounds: int = DEFAULT_ROUNDS) -> str:
    """A ``$2b$`` bcrypt hash of ``password`` (UTF-8, at most 72 bytes: bcrypt's limit)."""
    raw = password.encode()
    if not raw:
        raise ValueError("the password is empty")
    if len(raw) > 72:
        raise ValueError("bcrypt uses at most 72 bytes of a password; choose a shorter one")
    return bcrypt.hashpw(raw, bcrypt.gensalt(rounds)).decode()


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bool(bcrypt.checkpw(password.encode(), password_hash.encode()))
    except ValueError:
        return False
