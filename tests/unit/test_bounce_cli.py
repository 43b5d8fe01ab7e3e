"""``postline bounce classify FILE...``: one JSON object per failed recipient."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from postline.common.cli import main
from tests.conftest import ROOT

CORPUS = ROOT.parent / "shared" / "corpus" / "bounces" / "sisimai" / "eml"
FIELDS = {"recipient", "status", "delivery", "reply_code", "enhanced_status", "reason"}

DSN = (
    "From: MAILER-DAEMON@mx.example.test\r\n"
    "To: bounce-0123abc@bounce.example.test\r\n"
    "Subject: Delivery Status Notification (Failure)\r\n"
    "MIME-Version: 1.0\r\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="XX"\r\n\r\n'
    "--XX\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\r\n"
    "--XX\r\nContent-Type: message/delivery-status\r\n\r\n"
    "Reporting-MTA: dns; mx.example.test\r\n\r\n"
    "Final-Recipient: rfc822; gone@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    "Diagnostic-Code: smtp; 550 5.1.1 <gone@example.test>: Recipient address rejected: "
    "User unknown in local recipient table\r\n\r\n"
    "Final-Recipient: rfc822; full@example.test\r\nAction: delayed\r\nStatus: 4.2.2\r\n"
    "Diagnostic-Code: smtp; 452 4.2.2 Mailbox full\r\n\r\n"
    "--XX--\r\n"
)
VACATION = (
    "From: reader@example.test\r\nTo: app@example.test\r\nSubject: Out of office\r\n"
    "Auto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n"
)


def _run(*args: str, stdin: str | None = None) -> tuple[int, list[dict[str, object]], str]:
    result = CliRunner().invoke(main, ["bounce", "classify", *args], input=stdin)
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, rows, result.stderr


def test_one_file_prints_each_failed_recipient(tmp_path: Path) -> None:
    path = tmp_path / "dsn.eml"
    path.write_text(DSN)
    code, rows, _ = _run(str(path))
    assert code == 0
    assert all(set(row) == FIELDS for row in rows)  # no "file" with a single file
    by_rcpt = {row["recipient"]: row for row in rows}
    assert by_rcpt["gone@example.test"] == {
        "recipient": "gone@example.test",
        "status": 2,
        "delivery": "failed",
        "reply_code": 550,
        "enhanced_status": "5.1.1",
        "reason": "550 5.1.1 <gone@example.test>: Recipient address rejected: "
        "User unknown in local recipient table",
    }
    assert (by_rcpt["full@example.test"]["status"], by_rcpt["full@example.test"]["delivery"]) == (
        5,
        "deferred",
    )


def test_several_files_name_their_file_and_non_bounces_print_nothing(tmp_path: Path) -> None:
    dsn, vacation = tmp_path / "a.eml", tmp_path / "b.eml"
    dsn.write_text(DSN)
    vacation.write_text(VACATION)
    code, rows, err = _run(str(dsn), str(vacation))
    assert code == 0
    assert [row["file"] for row in rows] == [str(dsn), str(dsn)]
    assert f"{vacation}: autoreply, not a bounce" in err


def test_dash_reads_standard_input() -> None:
    code, rows, _ = _run("-", stdin=DSN)
    assert code == 0
    assert sorted(row["recipient"] for row in rows) == ["full@example.test", "gone@example.test"]


def test_a_notice_text_without_headers_is_classified_by_its_words() -> None:
    # A notice's text alone, as it is often pasted or kept: read by its words (a mail as
    # it arrives has its headers too); an ordinary text stays no bounce.
    notice = (
        "This is the mail system at host mx.example.net.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n\n                   The mail system\n\n"
        "<gone@example.test>: host mx.example.test[192.0.2.1] said: 550 5.1.1\n"
        "    <gone@example.test>: Recipient address rejected: User unknown (in reply to\n"
        "    RCPT TO command)\n"
    )
    code, rows, _ = _run("-", stdin=notice)
    assert code == 0
    assert [(row["recipient"], row["status"]) for row in rows] == [("gone@example.test", 2)]
    code, rows, err = _run("-", stdin="Hi, lunch at noon? gone@example.test\n")
    assert (code, rows) == (0, []) and "not a bounce" in err


def test_a_missing_file_is_an_error_but_the_others_are_classified(tmp_path: Path) -> None:
    path = tmp_path / "dsn.eml"
    path.write_text(DSN)
    code, rows, err = _run(str(tmp_path / "missing.eml"), str(path))
    assert code == 1
    assert len(rows) == 2 and "missing.eml" in err


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"bounce corpus not found at {CORPUS}")
def test_the_installed_command_classifies_corpus_mails_in_one_process() -> None:
    files = sorted(CORPUS.glob("lhost-postfix-0*.eml"))[:5]
    out = subprocess.run(
        [str(Path(sys.executable).with_name("postline")), "bounce", "classify", *map(str, files)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines()]
    assert {row["file"] for row in rows} == {str(f) for f in files}
    assert all(row["status"] in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99) for row in rows)
