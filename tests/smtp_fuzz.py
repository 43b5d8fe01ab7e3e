"""An SMTP fuzzer: sessions of malformed, hostile and odd input against a relay on a socket.

Each case is one SMTP session made from a seeded random generator: command sequences in and
out of order, arguments mutated (NUL bytes, non-UTF-8 bytes, bare CR and LF, tabs, very long
lines, odd addresses and parameters), several commands written at once (pipelining abuse),
DATA sections with smuggling shapes (``LF.LF``, ``CR.CR``, ``LF.CRLF``... followed by
commands) and clients that leave mid-command. The fuzzer writes a case, reads whatever comes
back until the relay is quiet, and judges it:

- every reply line is ``NNN`` + space or hyphen + printable US-ASCII text (RFC 5321 §4.2:
  whatever the client sent, nothing it sent comes back raw), the lines of a reply share one
  code, and only codes 2xx-5xx appear;
- every 2xx/4xx/5xx reply carries an enhanced status code (RFC 2034 §3: not the greeting, not
  the replies to HELO/EHLO), since the relay announces ENHANCEDSTATUSCODES;
- no reply is the relay's answer to an unexpected error (``451 4.3.0 ... temporary local
  problem``): that is a bug behind a polite face;
- the relay is alive afterwards: a new connection is greeted and answers NOOP.

``Case.seed`` reproduces a case: ``generate(seed)``.
"""

from __future__ import annotations

import asyncio
import base64
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

REPLY_LINE = re.compile(rb"^([2-5]\d\d)([ -])(.*)$", re.DOTALL)
# RFC 5321 §4.2: textstring = 1*(%d09 / %d32-126), printable US-ASCII and HT
TEXT = re.compile(rb"^[\t\x20-\x7e]*$")
ENHANCED = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3}( |$)")
LOCAL_ERROR = b"temporary local problem"
QUIET_SECONDS = 0.15  # no byte for this long: the relay has answered what it will
CASE_SECONDS = 10.0  # a case whose replies keep coming longer than this is cut short

VERBS = [
    b"EHLO", b"HELO", b"MAIL FROM:", b"RCPT TO:", b"DATA", b"RSET", b"NOOP", b"QUIT",
    b"VRFY", b"EXPN", b"HELP", b"STARTTLS", b"AUTH", b"BDAT", b"TURN", b"ETRN", b"XCLIENT",
]  # fmt: skip
ODD_BYTES = [
    b"\x00", b"\xff", b"\xfe\xff", b"\xc3\x28", b"\xe2\x82", b"\r", b"\n", b"\t", b" ",
    b"\x7f", b"\x1b[0m", b"<", b">", b":", b"\"", b"\\", b"%", b"@", b"..", b"\xed\xa0\x80",
    "é".encode(), "日本".encode(), b"=?utf-8?b?", b"\x0b", b"\x0c",
]  # fmt: skip
SMUGGLING = [
    b"\n.\n", b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n.\r", b"\r\n.\r",
    b"\r\n\x00.\r\n", b"\r\n .\r\n", b"\r\n..\r\n",
]  # fmt: skip


@dataclass
class Case:
    seed: int
    writes: list[bytes]  # written in turn, each followed by reading what comes
    kinds: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    case: Case
    replies: list[bytes]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


class Generator:
    def __init__(self, seed: int, user: bytes, secret: bytes) -> None:
        self.r = random.Random(seed)
        self.seed = seed
        self.user, self.secret = user, secret

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def junk(self, low: int = 1, high: int = 40) -> bytes:
        out = bytearray()
        for _ in range(self.r.randint(low, high)):
            if self.chance(0.3):
                out += self.r.choice(ODD_BYTES)
            else:
                out.append(self.r.randint(0x20, 0x7E))
        return bytes(out)

    def mutate(self, text: bytes) -> bytes:
        """The same text with a few bytes changed, inserted or dropped."""
        data = bytearray(text)
        for _ in range(self.r.randint(1, 4)):
            where = self.r.randint(0, len(data))
            action = self.r.random()
            if action < 0.4:
                data[where:where] = self.r.choice(ODD_BYTES)
            elif action < 0.7 and data:
                del data[min(where, len(data) - 1)]
            else:
                data[where:where] = self.junk(1, 5)
        return bytes(data)

    def address(self) -> bytes:
        local = self.r.choice(
            [b"user", b"a.b", b"x+tag", b"\"quoted user\"", b"irregular..dots", b"", b"-",
             b"a" * self.r.randint(60, 400), b"us\xffer", b"\"\\\"\"", b"a@b"]
        )  # fmt: skip
        domain = self.r.choice(
            [b"a.test", b"example.test", b"[127.0.0.1]", b"", b"..", b"x" * 300 + b".test",
             b"b_c.test", b"d\xc3\xa9.test", b"-a.test"]
        )  # fmt: skip
        address = local + b"@" + domain if domain or self.chance(0.5) else local
        if self.chance(0.15):
            address = self.mutate(address)
        shape = self.r.random()
        if shape < 0.7:
            return b"<" + address + b">"
        if shape < 0.8:
            return address
        if shape < 0.9:
            return b"<<" + address + b">>"
        return b"<" + address

    def params(self) -> bytes:
        if not self.chance(0.3):
            return b""
        return b" " + self.r.choice(
            [b"SIZE=100", b"SIZE=99999999999999999999", b"SIZE=-1", b"SIZE=", b"BODY=8BITMIME",
             b"BODY=BINARYMIME", b"SMTPUTF8", b"RET=FULL", b"NOTIFY=NEVER", b"=", b"SIZE=1 SIZE=2",
             self.junk(1, 20)]
        )  # fmt: skip

    def line_end(self) -> bytes:
        roll = self.r.random()
        if roll < 0.85:
            return b"\r\n"
        return self.r.choice([b"\n", b"\r", b"\r\r\n", b"\n\r", b"\x00\r\n"])

    def command(self) -> tuple[str, bytes]:
        roll = self.r.random()
        if roll < 0.12:
            return "ehlo", self.r.choice([b"EHLO ", b"HELO ", b"ehlo ", b"EHLO\t"]) + (
                self.r.choice([b"client.test", b"", b"[127.0.0.1]"])
                if self.chance(0.7)
                else self.junk()
            )
        if roll < 0.27:
            return "mail", b"MAIL FROM:" + self.address() + self.params()
        if roll < 0.42:
            return "rcpt", b"RCPT TO:" + self.address() + self.params()
        if roll < 0.50:
            return "auth", self.auth()
        if roll < 0.56:
            return "vrfy", self.r.choice([b"VRFY ", b"EXPN "]) + self.r.choice(
                [self.address(), self.junk(), b"\xff\xfe", b""]
            )
        if roll < 0.62:
            return "simple", self.r.choice(
                [b"RSET", b"NOOP", b"HELP", b"NOOP extra", b"HELP MAIL", b"RSET now",
                 b"STARTTLS", b"QUIT" if self.chance(0.2) else b"NOOP", b"BDAT 10 LAST",
                 b"XCLIENT ADDR=1.2.3.4", b"TURN", b"ETRN a.test"]
            )  # fmt: skip
        if roll < 0.70:
            return "long", self.r.choice(VERBS) + b" " + b"A" * self.r.choice(
                [500, 997, 998, 999, 1000, 1024, 4096, 70000]
            )
        if roll < 0.78:
            return "junk", self.junk(1, 200)
        if roll < 0.86:
            return "mutated", self.mutate(self.r.choice(VERBS) + b" " + self.address())
        return "empty", self.r.choice([b"", b" ", b"\t", b"\x00"])

    def auth(self) -> bytes:
        shape = self.r.random()
        plain = base64.b64encode(b"\0" + self.user + b"\0" + self.secret)
        if shape < 0.3:
            return b"AUTH PLAIN " + plain
        if shape < 0.5:
            wrong = base64.b64encode(b"\0" + self.user + b"\0" + self.junk(1, 10))
            return b"AUTH PLAIN " + wrong
        if shape < 0.6:
            return b"AUTH PLAIN " + self.junk(1, 30)
        if shape < 0.7:
            return b"AUTH LOGIN " + base64.b64encode(self.junk(1, 20))
        if shape < 0.8:
            return b"AUTH CRAM-MD5"
        if shape < 0.9:
            return b"AUTH PLAIN =" if self.chance(0.5) else b"AUTH PLAIN"
        return b"AUTH " + self.junk(1, 20)

    def data_section(self) -> tuple[str, bytes]:
        """DATA, a body (maybe with smuggling shapes and long lines), and usually its end."""
        body = bytearray(b"Subject: fuzz\r\n\r\n")
        for _ in range(self.r.randint(0, 8)):
            roll = self.r.random()
            if roll < 0.4:
                body += self.junk(0, 80) + self.line_end()
            elif roll < 0.6:
                body += self.r.choice(SMUGGLING)
                if self.chance(0.6):  # a second transaction hidden behind it
                    body += b"MAIL FROM:<evil@a.test>\r\nRCPT TO:<victim@b.test>\r\nDATA\r\n"
            elif roll < 0.7:
                body += b"x" * self.r.choice([998, 999, 1000, 5000]) + b"\r\n"
            elif roll < 0.8:
                body += b"." + self.junk(0, 10) + b"\r\n"
            elif roll < 0.9:
                body += b"\x00" * self.r.randint(1, 10) + b"\r\n"
            else:
                body += b"line\n"
        end = b"\r\n.\r\n" if self.chance(0.85) else self.r.choice([b"", b"\n.\n", b".\r\n"])
        return "data", b"DATA\r\n" + bytes(body) + end

    def case(self) -> Case:
        writes: list[bytes] = []
        kinds: list[str] = []
        pending = bytearray()
        if self.chance(0.8):  # most sessions start politely, to reach deeper states
            pending += b"EHLO fuzz.test\r\n"
        for _ in range(self.r.randint(1, 12)):
            if self.chance(0.12):
                kind, text = self.data_section()
                pending += text
            else:
                kind, text = self.command()
                pending += text + self.line_end()
            kinds.append(kind)
            # Several commands in one write, or each on its own (pipelining, or not).
            if not self.chance(0.35):
                writes.append(bytes(pending))
                pending.clear()
        if pending:
            writes.append(bytes(pending))
        if self.chance(0.7):
            writes.append(b"QUIT\r\n")
        return Case(self.seed, writes, kinds)


def generate(seed: int, user: bytes = b"dev", secret: bytes = b"dev-secret") -> Case:
    return Generator(seed, user, secret).case()


def check_replies(data: bytes, hostname: bytes) -> tuple[list[bytes], list[str]]:
    """The replies in ``data`` (CRLF-terminated lines, last maybe cut) and what is wrong;
    ``hostname`` is the relay's, which its HELO/EHLO replies start with."""
    problems: list[str] = []
    lines = data.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    replies: list[bytes] = []
    current: list[bytes] = []
    first_reply = True
    for line in lines:
        match = REPLY_LINE.match(line)
        if match is None:
            problems.append(f"not a reply line: {line[:80]!r}")
            continue
        code, sep, text = match.groups()
        if not TEXT.match(text):
            problems.append(f"reply text not printable US-ASCII: {line[:80]!r}")
        if current and not current[0].startswith(code):
            problems.append(f"a multi-line reply changes its code: {line[:80]!r}")
        current.append(line)
        if sep == b"-":
            continue
        reply = b"\r\n".join(current)
        current = []
        replies.append(reply)
        # RFC 2034 §3 exempts the greeting and the replies to HELO/EHLO (which name the host)
        exempt = (
            (first_reply and code == b"220")
            or (code == b"250" and reply.split(b"\r\n")[0][4:] == hostname)
            or text.startswith((b"Syntax: HELO", b"Syntax: EHLO"))
        )
        first_reply = False
        if code[:1] in b"245" and not exempt and not ENHANCED.match(text):
            problems.append(f"no enhanced status: {reply[:80]!r}")
        if LOCAL_ERROR in reply:
            problems.append(f"an unexpected error behind the reply: {reply[:80]!r}")
    if current:
        problems.append(f"a reply cut short: {current[-1][:80]!r}")
    return replies, problems


async def run_case(host: str, port: int, case: Case, hostname: bytes) -> Verdict:
    """Play one case against the relay and judge what came back."""
    problems: list[str] = []
    received = bytearray()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except OSError as exc:
        return Verdict(case, [], [f"cannot connect: {exc!r}"])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CASE_SECONDS
    try:
        received += await _read_quiet(reader, deadline)
        for chunk in case.writes:
            if reader.at_eof():
                break
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break
            received += await _read_quiet(reader, deadline)
    except ConnectionError:
        pass  # the relay may close a connection (421, a 554 session): what came is judged
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
    replies, found = check_replies(bytes(received), hostname)
    problems += found
    if not received.startswith((b"220 ", b"554 ", b"421 ")):
        problems.append(f"no greeting: {bytes(received[:80])!r}")
    return Verdict(case, replies, problems)


async def _read_quiet(reader: asyncio.StreamReader, deadline: float) -> bytes:
    """What the relay sends until it has been quiet for ``QUIET_SECONDS`` (or closes)."""
    got = bytearray()
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), QUIET_SECONDS)
        except TimeoutError:
            break
        if not chunk:
            break
        got += chunk
    return bytes(got)


async def alive(host: str, port: int) -> str | None:
    """None if a new session is greeted and answers NOOP, else what went wrong."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
    except (OSError, TimeoutError) as exc:
        return f"cannot connect: {exc!r}"
    try:
        greeting = await asyncio.wait_for(reader.readline(), 10)
        if not greeting.startswith(b"220 "):
            return f"greeting {greeting!r}"
        writer.write(b"NOOP\r\n")
        answer = await asyncio.wait_for(reader.readline(), 10)
        if not answer.startswith(b"250 "):
            return f"NOOP answered {answer!r}"
        writer.write(b"QUIT\r\n")
        return None
    except (OSError, TimeoutError) as exc:
        return f"no answer: {exc!r}"
    finally:
        writer.close()


@dataclass
class Report:
    cases: int = 0
    replies: int = 0
    failures: list[Verdict] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)


async def fuzz(
    host: str,
    port: int,
    *,
    hostname: bytes,
    cases: int,
    first_seed: int = 0,
    parallel: int = 8,
    check_every: int = 50,
    progress: Callable[[Report], None] | None = None,
) -> Report:
    """Run ``cases`` cases (seeds ``first_seed``...), ``parallel`` at a time."""
    report = Report()
    seeds = iter(range(first_seed, first_seed + cases))
    lock = asyncio.Lock()

    async def worker() -> None:
        for seed in seeds:
            verdict = await run_case(host, port, generate(seed), hostname)
            async with lock:
                report.cases += 1
                report.replies += len(verdict.replies)
                for kind in verdict.case.kinds:
                    report.kinds[kind] = report.kinds.get(kind, 0) + 1
                if not verdict.ok:
                    report.failures.append(verdict)
                if report.cases % check_every == 0:
                    problem = await alive(host, port)
                    if problem is not None:
                        report.dead.append(f"after case {seed}: {problem}")
                    if progress is not None:
                        progress(report)

    await asyncio.gather(*(worker() for _ in range(parallel)))
    problem = await alive(host, port)
    if problem is not None:
        report.dead.append(f"at the end: {problem}")
    return report
