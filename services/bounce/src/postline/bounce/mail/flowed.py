"""Text sent as format=flowed, read back into its lines (RFC 3676 section 4.2).

A generating agent may break a long line into several, each but the last ending in a space
(a soft line break), and puts a space before a line that begins with a space, ">" or "From "
(space-stuffing, section 4.4). A reader joins the soft-broken lines and takes the stuffing
off: the notice's lines are then those its writer meant, whatever width its mailer wrapped
them to (a recipient's address and its reason on one line, as a plain notice has them).
"""

from __future__ import annotations

SIGNATURE = "-- "  # the signature separator is a hard line break (section 4.3)


def unflow(text: str, *, delsp: bool = False) -> str:
    """The text's lines with soft line breaks joined and space-stuffing removed; with DelSp
    (section 4.2), the space of each soft break is deleted as well. Lines are joined only
    at the same quote depth (section 4.5)."""
    out: list[str] = []
    flowing: list[str] = []  # the parts of a paragraph whose lines so far ended soft
    depth = 0
    for line in text.split("\n"):
        cr = line.endswith("\r")
        if cr:
            line = line[:-1]
        quotes = len(line) - len(line.lstrip(">"))
        body = line[quotes:]
        if body.startswith(" "):
            body = body[1:]
        if flowing and quotes != depth:
            out.append(">" * depth + "".join(flowing))  # a soft break across depths: hard
            flowing = []
        depth = quotes
        if body.endswith(" ") and body != SIGNATURE:
            flowing.append(body[:-1] if delsp else body)
            continue
        out.append(">" * quotes + "".join(flowing) + body + ("\r" if cr else ""))
        flowing = []
    if flowing:
        out.append(">" * depth + "".join(flowing))
    return "\n".join(out)
