"""A mail's MIME tree as ``email.message_from_bytes`` (compat32) builds it, built faster.

The standard library's ``FeedParser`` takes its input a chunk at a time: every line goes
through a generator that may pause for more data (``NeedMoreData``) and a buffer that checks
it against the stack of boundaries ending the current part (``BufferedSubFile``), and a
part's body is gathered line by line. A bounce is parsed from bytes already all in memory,
so here the same steps run over the whole list of lines: ``_Tree`` follows
``FeedParser._parsegen`` (Python 3.11) step for step, with the same regular expressions,
the same ``Message`` and policy calls and the same defects, and takes a body up to the next
line that ends it in one slice. The result is the tree the standard library builds (every
header as stored, payload, preamble, epilogue, default type and defect;
``tests/unit/test_bounce_parse_cost.py`` compares the two on every mail of the corpora and
their rewrites). A mail nested deeper than ``MAX_DEPTH``, or anything that raises, is left
to the standard library, so that its answer, or its error, is the one it gives.
"""

from __future__ import annotations

import email
from collections.abc import Callable
from email import errors
from email._policybase import compat32

# The standard library's own patterns (typeshed's stubs leave them out).
from email.feedparser import NLCRE, NLCRE_bol, headerRE  # type: ignore[attr-defined]
from email.message import Message
from io import StringIO

MAX_DEPTH = 32  # nested parts; a mail nested deeper goes to the standard library
_POLICY = compat32
# A line that ends a part early ("--boundary" or the blank line between a report's field
# blocks) starts with one of these; every other line is read past without asking.
_EOF_STARTS = frozenset("-\r\n")


def line_end(text: str) -> str:
    r"""What ``NLCRE_eol.search(text)`` (``(\r\n|\r|\n)\Z``) finds, '' for nothing: the
    standard library tries it at every position of a part's whole body; only a line end
    ending the text can match, "\r\n" where it can (the leftmost start)."""
    if text.endswith("\r\n"):
        return "\r\n"
    return text[-1:] if text.endswith(("\r", "\n")) else ""


def without_line_end(text: str) -> str:
    """The text without the line end ``line_end`` finds (the standard library's
    ``text[: -len(mo.group(0))]`` after that search)."""
    eol = line_end(text)
    return text[: -len(eol)] if eol else text


def boundary_line(separator: str, line: str) -> tuple[bool, str | None] | None:
    r"""What the standard library's pattern of a boundary line
    (``(?P<sep>--boundary)(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$``, compiled
    anew at each multipart, which costs more than reading the part) says of a line: None
    when it does not match, else (whether it ends the multipart, its line end or None).
    After the separator and an optional "--", blanks and then at most one line end may
    follow: were the "--" another's first characters, no blank or line end could match it."""
    if not line.startswith(separator):
        return None
    rest = line[len(separator) :]
    end = rest.startswith("--")
    tail = (rest[2:] if end else rest).lstrip(" \t")
    if tail not in _LINE_END:
        return None
    return end, _LINE_END[tail]


# What may follow the blanks -> the line end the pattern reads: "$" matches at the end
# and before a last "\n".
_LINE_END = {"": None, "\n": "\n", "\n\n": "\n", "\r": "\r", "\r\n": "\r\n", "\r\n\n": "\r\n"}


class _TooDeep(Exception):
    pass


def message_from_bytes(raw: bytes) -> Message:
    """``email.message_from_bytes(raw)``: the same tree, in fewer steps."""
    text = raw.decode("ascii", "surrogateescape")
    try:
        return _Tree(text).parse()
    except Exception:  # whatever it was, the standard library decides
        return email.message_from_bytes(raw)


class _Tree:
    """``FeedParser`` over all of a text's lines at once (``_parsegen``'s state and steps;
    the comments name the standard library's where a step is done otherwise)."""

    def __init__(self, text: str) -> None:
        # BufferedSubFile cracks its input with StringIO(newline="").readlines(): lines end
        # at "\r\n", "\r" or "\n" and keep their ends.
        self.lines = StringIO(text, newline="").readlines()
        self.at = 0
        self.pushed: list[str] = []  # lines read and put back (unreadline), last first
        self.eofs: list[Callable[[str], object]] = []
        self.stack: list[Message] = []
        self.types: list[str] = []  # the content type of each message of the stack
        self.last: Message | None = None

    # BufferedSubFile
    def _ends(self, line: str) -> bool:
        for ateof in reversed(self.eofs):
            if ateof(line):
                return True
        return False

    def readline(self) -> str:
        if self.pushed:
            line = self.pushed.pop()
            if not line:
                return ""  # an end put back (a run of boundaries read to the end)
        elif self.at < len(self.lines):
            line = self.lines[self.at]
            self.at += 1
        else:
            return ""
        if self.eofs and line[0] in _EOF_STARTS and self._ends(line):
            self.pushed.append(line)
            return ""
        return line

    def unreadline(self, line: str) -> None:
        self.pushed.append(line)

    def rest(self) -> list[str]:
        """Every line up to the current end (``for line in self._input``), in one slice
        where no line was put back."""
        if self.pushed:
            taken = []
            while line := self.readline():
                taken.append(line)
            return taken
        start, lines = self.at, self.lines
        end = len(lines)
        if self.eofs:
            for index in range(start, end):
                line = lines[index]
                if line[0] in _EOF_STARTS and self._ends(line):
                    end = index
                    break
        self.at = end
        return lines[start:end]

    # FeedParser
    def parse(self) -> Message:
        self._parsegen()
        root = self._pop_message()
        if root.get_content_maintype() == "multipart" and not root.is_multipart():
            _POLICY.handle_defect(root, errors.MultipartInvariantViolationDefect())
        return root

    def _new_message(self) -> Message:
        msg = Message(policy=_POLICY)
        if self.stack and len(self.stack[-1]) and self.types[-1] == "multipart/digest":
            msg.set_default_type("message/rfc822")
        if self.stack:
            self.stack[-1].attach(msg)
        if len(self.stack) > MAX_DEPTH:
            raise _TooDeep
        self.stack.append(msg)
        self.types.append("")
        self.last = msg
        return msg

    def _pop_message(self) -> Message:
        self.types.pop()
        return self.stack.pop()

    def _parsegen(self) -> None:
        cur = self._new_message()
        self._parse_headers(cur, self._header_lines(cur))
        # get_content_type() depends on the headers and the default type only, both set by
        # now: read once where the standard library asks up to four times.
        ctype = cur.get_content_type()
        self.types[-1] = ctype
        maintype = ctype.split("/")[0]
        if ctype == "message/delivery-status":
            self._report_blocks()
            return
        if maintype == "message":
            self._parsegen()
            self._pop_message()
            return
        if maintype == "multipart":
            self._multipart(cur)
            return
        cur.set_payload("".join(self.rest()))

    def _header_lines(self, cur: Message) -> list[str]:
        """The lines of the header block starting here (``_parsegen``'s first loop): the
        lines after those put back are read from the list, not one ``readline`` each."""
        headers: list[str] = []
        while self.pushed:
            line = self.readline()
            if not line:
                return headers
            if not headerRE.match(line):
                self._body_starts(cur, line)
                return headers
            headers.append(line)
        lines, eofs = self.lines, self.eofs
        for at in range(self.at, len(lines)):
            line = lines[at]
            if eofs and line[0] in _EOF_STARTS and self._ends(line):
                self.at = at
                return headers
            if not headerRE.match(line):
                self.at = at + 1
                self._body_starts(cur, line)
                return headers
            headers.append(line)
        self.at = len(lines)
        return headers

    def _body_starts(self, cur: Message, line: str) -> None:
        """The line that ends a header block: an empty one is dropped, any other is the
        body's first (and the block lacks its separator)."""
        if not NLCRE.match(line):
            _POLICY.handle_defect(cur, errors.MissingHeaderBodySeparatorDefect())
            self.unreadline(line)

    def _report_blocks(self) -> None:
        while True:
            self.eofs.append(NLCRE.match)
            self._parsegen()
            self._pop_message()
            self.eofs.pop()
            self.readline()
            line = self.readline()
            if line == "":
                break
            self.unreadline(line)

    def _multipart(self, cur: Message) -> None:
        boundary = cur.get_boundary()
        if boundary is None:
            _POLICY.handle_defect(cur, errors.NoBoundaryInMultipartDefect())
            cur.set_payload("".join(self.rest()))
            return
        if str(cur.get("content-transfer-encoding", "8bit")).lower() not in (
            "7bit",
            "8bit",
            "binary",
        ):
            _POLICY.handle_defect(cur, errors.InvalidMultipartContentTransferEncodingDefect())
        separator = "--" + boundary

        def boundaryre(line: str) -> tuple[bool, str | None] | None:
            return boundary_line(separator, line)

        capturing_preamble = True
        preamble: list[str] = []
        linesep: str | None = None
        close_boundary_seen = False
        while line := self.readline():
            mo = boundaryre(line)
            if mo:
                if mo[0]:
                    close_boundary_seen = True
                    linesep = mo[1]
                    break
                if capturing_preamble:
                    if preamble:
                        preamble[-1] = without_line_end(preamble[-1])
                        cur.preamble = "".join(preamble)
                    capturing_preamble = False
                    self.unreadline(line)
                    continue
                while True:
                    line = self.readline()
                    if not boundaryre(line):
                        self.unreadline(line)
                        break
                self.eofs.append(boundaryre)
                self._parsegen()
                last = self.last
                assert last is not None
                if last.get_content_maintype() == "multipart":
                    epilogue = last.epilogue
                    if epilogue == "":
                        last.epilogue = None
                    elif epilogue is not None:
                        last.epilogue = without_line_end(epilogue)
                else:
                    # The payload as stored, as FeedParser reads and trims it (get_payload()
                    # would decode 8-bit text).
                    payload = last._payload  # type: ignore[attr-defined]
                    if isinstance(payload, str):
                        last._payload = without_line_end(payload)  # type: ignore[attr-defined]
                self.eofs.pop()
                self._pop_message()
                self.last = cur
            else:
                preamble.append(line)
        if capturing_preamble:
            _POLICY.handle_defect(cur, errors.StartBoundaryNotFoundDefect())
            cur.set_payload("".join(preamble))
            self.rest()
            cur.epilogue = ""
            return
        if not close_boundary_seen:
            _POLICY.handle_defect(cur, errors.CloseBoundaryNotFoundDefect())
            return
        after = [""] if linesep else []
        after.extend(self.rest())
        if after:
            firstline = after[0]
            bolmo = NLCRE_bol.match(firstline)
            if bolmo:
                after[0] = firstline[len(bolmo.group(0)) :]
        cur.epilogue = "".join(after)

    def _parse_headers(self, cur: Message, lines: list[str]) -> None:
        lastheader = ""
        lastvalue: list[str] = []
        for lineno, line in enumerate(lines):
            if line[0] in " \t":
                if not lastheader:
                    _POLICY.handle_defect(cur, errors.FirstHeaderLineIsContinuationDefect(line))
                    continue
                lastvalue.append(line)
                continue
            if lastheader:
                cur.set_raw(*_POLICY.header_source_parse(lastvalue))
                lastheader, lastvalue = "", []
            if line.startswith("From "):
                if lineno == 0:
                    cur.set_unixfrom(without_line_end(line))
                    continue
                if lineno == len(lines) - 1:
                    self.unreadline(line)
                    return
                cur.defects.append(errors.MisplacedEnvelopeHeaderDefect(line))
                continue
            i = line.find(":")
            if i == 0:
                cur.defects.append(errors.InvalidHeaderDefect("Missing header name."))
                continue
            lastheader = line[:i]
            lastvalue = [line]
        if lastheader:
            cur.set_raw(*_POLICY.header_source_parse(lastvalue))
