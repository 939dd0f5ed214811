"""Bearer tokens of the label and admin endpoints: several at once (rotation), compared in constant
time, and named in the records by a fingerprint, never by the token itself."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

MIN_TOKEN_LENGTH = 16
_SCHEME = "bearer "


class TokenError(ValueError):
    """A configured token that cannot be used (too short, blank)."""


def fingerprint(token: str) -> str:
    """A short, stable name of a token for the records: the first 12 hex digits of its SHA-256."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TokenSet:
    """The tokens accepted right now; an empty set refuses every caller (fail closed)."""

    tokens: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, tokens: Iterable[str]) -> TokenSet:
        """Accept these tokens; raises TokenError for one shorter than MIN_TOKEN_LENGTH."""
        kept = []
        for token in tokens:
            if len(token) < MIN_TOKEN_LENGTH or token != token.strip():
                raise TokenError(
                    f"an API token of {len(token)} characters (with surrounding blanks or shorter "
                    f"than {MIN_TOKEN_LENGTH}); use a long random one, e.g. "
                    "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
                )
            kept.append(token.encode())
        return cls(tuple(dict.fromkeys(kept)))

    def __bool__(self) -> bool:
        return bool(self.tokens)

    def caller(self, authorization: str | None) -> str | None:
        """The fingerprint of the token an `Authorization: Bearer …` header carries, or None.

        Every configured token is compared, each in constant time, so neither the answer's timing
        nor the number of tokens tells a caller how close a guess was.
        """
        if not authorization or authorization[: len(_SCHEME)].lower() != _SCHEME:
            return None
        given = authorization[len(_SCHEME) :].strip().encode("utf-8", "replace")
        matched: bytes | None = None
        for token in self.tokens:
            if hmac.compare_digest(token, given):
                matched = token
        return None if matched is None else fingerprint(matched.decode())


def read_token_lines(text: str) -> list[str]:
    """Tokens of a secrets file: one per line; blank lines and `#` comments are skipped."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
