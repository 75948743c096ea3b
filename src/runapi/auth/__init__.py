"""API keys and accounts: hashing, lookup, creation, revocation."""

from runapi.auth.keys import Principal, generate_key_secret, hash_key
from runapi.auth.repository import AccountRepository, KeyRepository

__all__ = ["AccountRepository", "KeyRepository", "Principal", "generate_key_secret", "hash_key"]
