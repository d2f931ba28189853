"""Keeping credentials out of everything robprune prints, stores or submits.

Credentials belong in the environment of the nodes (instance roles, Kubernetes secrets,
`AWS_*` variables given to `ray start`), never in a storage URI or in a job's metadata,
where Ray shows them to anyone who can reach the dashboard.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode

__all__ = ["SECRET_QUERY_KEYS", "secret_query_keys", "redact_uri", "looks_secret", "scrub"]

#: URI query parameters that carry credentials (pyarrow's S3/GCS options among them).
SECRET_QUERY_KEYS = frozenset(
    {"access_key", "secret_key", "session_token", "token", "password", "credentials"}
)
_SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|ACCESS_KEY|PRIVATE", re.I)


def secret_query_keys(uri: str) -> list[str]:
    """The credential-bearing query parameters present in a URI."""
    _, sep, query = uri.partition("?")
    if not sep:
        return []
    return [k for k, _ in parse_qsl(query, keep_blank_values=True) if k in SECRET_QUERY_KEYS]


def redact_uri(uri: str) -> str:
    """The URI with credential-bearing query values replaced by '***'."""
    base, sep, query = uri.partition("?")
    if not sep:
        return uri
    pairs = [
        (k, "***" if k in SECRET_QUERY_KEYS else v)
        for k, v in parse_qsl(query, keep_blank_values=True)
    ]
    return base + "?" + urlencode(pairs, safe="/:")


def looks_secret(name: str) -> bool:
    """An environment variable name that suggests a credential."""
    return bool(_SECRET_NAME.search(name))


def scrub(text: str, secrets: list[str]) -> str:
    """`text` with every given secret value (at least 4 characters) replaced by '***'."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text
