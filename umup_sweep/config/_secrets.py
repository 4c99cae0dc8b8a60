"""Storage URLs without secrets on disk or screen.

A sweep's `storage.url` may take any part from the environment: ``${NAME}`` is replaced by the
variable's value (``$$`` is a literal ``$``), e.g.
``postgresql://sweeper:${PGPASSWORD}@db:5432/sweeps``. A URL without a password leaves it to
libpq (``PGPASSWORD``, ``~/.pgpass``).

The validated `StorageSpec.url` is the *printable* form: ``${NAME}`` references as written, a
literal password replaced by ``***``. That is what `runs/<name>/sweep.yaml` holds and what
any message shows. `connect_url` gives the URL to connect with: the one the sweep was loaded
with in this process (literal password included, kept only in memory), else the printable
form with its references expanded and a ``***`` password left out (so libpq looks for it in
``PGPASSWORD`` / ``~/.pgpass``).

Example:
    >>> printable_url("postgresql://me:secret@db/sweeps")
    'postgresql://me:***@db/sweeps'
    >>> printable_url("postgresql://me:${PGPASSWORD}@db/sweeps")
    'postgresql://me:${PGPASSWORD}@db/sweeps'
    >>> expand("postgresql://me:${PW}@db/sweeps", {"PW": "p@ss"})
    'postgresql://me:p%40ss@db/sweeps'
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from urllib.parse import quote, unquote

__all__ = [
    "MASK",
    "MissingVariable",
    "connect_url",
    "expand",
    "load_url",
    "only_references",
    "password_left_out",
    "printable_url",
    "scrub",
]

MASK = "***"
# ${NAME}, or $$ (a literal $); any other `$` is an ordinary character.
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\$")
_BAD_REF = re.compile(r"\$\{(?![A-Za-z_][A-Za-z0-9_]*\})")
_ONLY_REFS = re.compile(r"(?:\$\{[A-Za-z_][A-Za-z0-9_]*\})+")
_SCHEME = re.compile(r"[\w+]+://")
_QUERY_PASSWORD = re.compile(r"(?P<key>[?&]password=)(?P<value>[^&]*)", re.I)

# The URL each printable URL was loaded from in this process (literal passwords included).
# Only in memory: the run directory and the database get the printable form.
_LOADED: dict[str, str] = {}


class MissingVariable(ValueError):
    """A ``${NAME}`` of a storage URL names an unset environment variable (`name`), or a
    ``${`` is not a ``${NAME}`` (`name` is None)."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        super().__init__(name or "malformed ${...}")

    def expected(self) -> str:
        """What the user should do, for a one-line message."""
        if self.name is None:
            return (
                "expected ${NAME} references to environment variables (NAME: letters, digits "
                "and _; $$ for a literal $)"
            )
        return (
            f"environment variable {self.name} is not set (the URL reads ${{{self.name}}} "
            f"from it): export {self.name}=... before running, or leave the password out of "
            "the URL and give it in PGPASSWORD or ~/.pgpass"
        )


def _password_span(url: str) -> tuple[int, int] | None:
    """Where the password of ``scheme://user:password@host...`` is in `url` (None: no
    password there). It runs to the last ``@`` before the query string, so a password with an
    unencoded ``@`` or ``/`` is still found whole."""
    m = _SCHEME.match(url)
    if m is None:
        return None
    first_at = url.find("@", m.end())
    colon = url.find(":", m.end(), max(first_at, 0))
    if first_at < 0 or colon < 0 or "/" in url[m.end() : colon]:
        return None
    query = url.find("?", first_at)
    return colon + 1, url.rfind("@", first_at, query if query >= 0 else len(url))


def _userinfo_end(url: str) -> int:
    """Where the ``user:password@`` part of `url` ends (its ``@``; 0 when there is none)."""
    span = _password_span(url)
    if span is not None:
        return span[1]
    m = _SCHEME.match(url)
    if m is None:
        return 0
    at, slash = url.find("@", m.end()), url.find("/", m.end())
    return at if at >= 0 and (slash < 0 or at < slash) else 0


def _replace_passwords(url: str, fix: Callable[[str], str | None]) -> str:
    """`url` with each password (of user:password@, and a ?password= parameter) replaced by
    `fix(password)`, or left out (with its ``:`` or parameter) where `fix` returns None."""
    span = _password_span(url)
    if span is not None:
        new = fix(url[span[0] : span[1]])
        head = url[: span[0] - 1] + ("" if new is None else ":" + new)
        rest = url[span[1] :]
    else:
        m = _SCHEME.match(url)
        cut = m.end() if m else 0
        head, rest = url[:cut], url[cut:]
    path, sep, query = rest.partition("?")
    if not sep:
        return head + rest

    def sub(q: re.Match[str]) -> str:
        new = fix(q.group("value"))
        return "" if new is None else q.group("key") + new

    query = _QUERY_PASSWORD.sub(sub, "?" + query)
    if query.startswith("&"):
        query = "?" + query[1:]
    return head + path + (query if query != "?" else "")


def _passwords(url: str) -> list[str]:
    """The passwords `url` gives (as written in it)."""
    found: list[str] = []

    def keep(password: str) -> str:
        found.append(password)
        return password

    _replace_passwords(url, keep)
    return found


def printable_url(url: str) -> str:
    """`url` with every literal password replaced by ``***`` (``${NAME}`` references kept).

    Example:
        >>> printable_url("postgresql://me:pw@db/s?sslmode=require&password=pw")
        'postgresql://me:***@db/s?sslmode=require&password=***'
        >>> printable_url("sqlite:///runs/x/study.db")
        'sqlite:///runs/x/study.db'
    """
    return _replace_passwords(url, lambda p: p if _kept(p) else MASK)


def _kept(password: str) -> bool:
    """Whether a password may be shown as written: empty, ``***``, or only references."""
    return password in ("", MASK) or only_references(password)


def only_references(text: str) -> bool:
    """Whether `text` is nothing but ``${NAME}`` references (e.g. a whole URL from one).

    Example:
        >>> only_references("${DATABASE_URL}"), only_references("x${A}")
        (True, False)
    """
    return _ONLY_REFS.fullmatch(text) is not None


def expand(url: str, environ: Mapping[str, str] | None = None) -> str:
    """`url` with ``${NAME}`` replaced by the variable's value (percent-encoded in the
    user:password part, so a password may hold any character) and ``$$`` by ``$``.

    Raises:
        MissingVariable: a variable is not set, or a ``${`` is not a ``${NAME}``.
    """
    env = os.environ if environ is None else environ
    if _BAD_REF.search(url):
        raise MissingVariable(None)
    userinfo_end = _userinfo_end(url)  # references before it are user or password

    def value(ref: re.Match[str]) -> str:
        name = ref.group(1)
        if name is None:
            return "$"
        if name not in env:
            raise MissingVariable(name)
        return quote(env[name], safe="") if ref.start() < userinfo_end else env[name]

    return _REF.sub(value, url)


def load_url(url: str) -> str:
    """Check a storage URL as the sweep file gives it, and return its printable form
    (remembering in memory what to connect with).

    Raises:
        MissingVariable: see `expand`.
    """
    real = expand(url)
    safe = printable_url(url)
    if safe != real:
        _LOADED[safe] = real
    return safe


def connect_url(url: str) -> str:
    """The URL to connect with for a storage URL (printable or not).

    Raises:
        MissingVariable: see `expand` (for a URL not loaded by `load_url` in this process).
    """
    if url in _LOADED:
        return _LOADED[url]
    return _replace_passwords(expand(url), lambda p: None if p == MASK else p)


def password_left_out(url: str) -> bool:
    """Whether connecting to `url` leaves the password to libpq (PGPASSWORD, ~/.pgpass)."""
    try:
        real = connect_url(url)
    except MissingVariable:
        return False
    return not _passwords(real)


def scrub(text: str, url: str) -> str:
    """`text` (say, a database driver's error) with the passwords of `url` replaced by ``***``.

    Example:
        >>> scrub("bad URL postgresql://me:pa%24s@db", "postgresql://me:pa%24s@db")
        'bad URL postgresql://me:***@db'
    """
    found = _passwords(url)
    try:
        found += _passwords(connect_url(url))
    except MissingVariable:
        pass
    for secret in sorted({s for p in found for s in (p, unquote(p))}, key=len, reverse=True):
        if not _kept(secret):
            text = text.replace(secret, MASK)
    return text
