"""Passwords in text: what a database URL or connection string carries, masked before any
message is printed, logged or stored."""

import re
from collections.abc import Iterable

from sqlalchemy import URL

MASK = "***"
SECRET_KEYS = ("password", "passwd", "pwd", "passfile", "sslpassword")
# user:password@ in a URL. A password may hold an unescaped "@" or "/" (the URL parser then
# takes part of it for the host), so the mask runs to the URL's last "@".
URL_USER_INFO = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*):[^\s'\"]*@")
# Query parameters (psycopg, pymysql) and libpq connection-string keys naming a secret. The
# value ends where the parameter or the word does; a ": " after it is the message's own.
SECRET_PARAMETER = re.compile(
    rf"\b({'|'.join(SECRET_KEYS)})=[^&\s'\"]*?(?=[&\s'\"]|:\s|:$|$)", flags=re.IGNORECASE
)
# The same in a URL known to be one: the value runs to the next parameter, spaces included.
URL_SECRET_PARAMETER = re.compile(rf"([?&](?:{'|'.join(SECRET_KEYS)}))=[^&]*", re.IGNORECASE)


def url_secrets(url: URL) -> list[str]:
    """The secrets a parsed URL carries: its password and secret query parameters."""
    values = [url.password]
    for key, value in url.query.items():
        if key.lower() in SECRET_KEYS:
            values += [value] if isinstance(value, str) else list(value)
    return [str(value) for value in values if value]


def mask_url(url: str) -> str:
    """A database URL as given (never parsed: a password holding "@", "/", a space or a
    quote breaks parsing) with its password masked: everything between the user name and the
    URL's last "@", and every secret query parameter. An "@" later in the URL masks more,
    never less."""
    scheme, separator, rest = url.partition("://")
    if not separator:  # no scheme: no URL, but it may still carry a password
        scheme, rest = "", url
    user_info, at, location = rest.rpartition("@")
    user, colon, _password = user_info.partition(":")
    if at and colon:
        url = f"{scheme}{separator}{user}:{MASK}@{location}"
    return URL_SECRET_PARAMETER.sub(rf"\1={MASK}", url)


def mask_secrets(text: str, known: Iterable[str] = ()) -> str:
    """The text with every password a URL or connection string in it carries masked, and
    any of the `known` secrets wherever they appear (a driver may quote one)."""
    for secret in known:
        text = text.replace(secret, MASK)
    text = URL_USER_INFO.sub(rf"\1:{MASK}@", text)
    return SECRET_PARAMETER.sub(rf"\1={MASK}", text)
