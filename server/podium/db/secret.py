"""Secrets at rest (pool passwords): encrypted with Fernet under a key file made with mode 0600."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from ..errors import PodiumError

log = logging.getLogger(__name__)


class SecretError(PodiumError):
    """A secret cannot be read back: the key file changed or the data is damaged."""


class SecretBox:
    """Encrypts and decrypts with the key in ``path``, creating the key on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fernet = Fernet(self._load_or_create())

    def _load_or_create(self) -> bytes:
        if self.path.exists():
            mode = self.path.stat().st_mode & 0o777
            if mode & 0o077:
                log.warning("%s is readable by others (mode %o); restricting it to 0600", self.path, mode)
                self.path.chmod(0o600)
            return self.path.read_bytes().strip()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key + b"\n")
        log.info("created the secret key %s", self.path)
        return key

    def encrypt(self, text: str) -> bytes:
        """The encrypted form of a secret."""
        return self._fernet.encrypt(text.encode())

    def decrypt(self, data: bytes) -> str:
        """The secret back, or :class:`SecretError`."""
        try:
            return self._fernet.decrypt(data).decode()
        except InvalidToken as e:
            raise SecretError(
                f"a stored secret cannot be decrypted with {self.path}: was the key file replaced?"
            ) from e
