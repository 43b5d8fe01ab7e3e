"""Bounce notices in other languages, written by real software from its own translations
(issue #16, round 75): GNU Mailutils 3.15's ``mda`` (Debian's mailutils-mda 1:3.15-4, its
catalogues in mailutils-common) run in the fifteen languages of its catalogue behind Postfix,
Exim and Sendmail (``bench/bounce_accuracy/mtas/mailutils_i18n_*.py``): its words as it printed
them, in the notices' shape (``tests/mta_notices_support``), and the round's case file.

Round 75 measured five languages once (29/60), then the ten others once (57/120, with main's
rules and with the rules written for the five alike): every quota's words (a mailbox over quota,
a message that would exceed the mailbox's size) read 7, a delivery program's failure, in every
language with a translation and in all three MTAs, and Exim's notice of "no such user" read 7 in
ten languages; Postfix quotes mda's UTF-8 output as it came in its report's Diagnostic-Code,
which the parser read as replacement characters. Its rules: mailbox-full's texts for the
catalogues' wordings, unknown-user-words' for theirs, and a report field's 8-bit bytes read as
UTF-8. The tests of the quota words, of Exim's unknown users and of the 8-bit fields fail
without them (100 of 148); the others hold what the classifier read before (an unknown user
with mda's exit status 67, the words of five languages, a mailbox mda cannot open).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bounce_accuracy.mtas import mailutils
from bench.bounce_accuracy.mtas.cases import I18N_CASES
from postline.bounce.mail.mime import block_text, read_message
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set
from tests.mta_notices_support import (
    FAILED_KIND,
    exim_local_failure,
    exim_notice,
    postfix_notice,
    sendmail_notice,
    sendmail_report,
)

RECIPIENT = "tomas.lind@example.net"

# mda's standard error as each locale printed it (the user's name changed to one)
QUOTA = [
    "mda: Fehler: tomas.lind: Postfachgrößenkontingent wurde für diesen Empfänger überschritten",
    "mda: Fehler: tomas.lind: Die Nachricht würde die maximale Postfachgröße dieses Empfängers"
    " übersteigen",
    "mda: erreur: tomas.lind: dépassement de quota de la boîte aux lettres du destinataire",
    "mda: erreur: tomas.lind: le message excède la taille maximale de la boîte aux lettre du"
    " destinataire",
    "mda: error: tomas.lind: se excedió la cuota del buzón para este destinatario",
    "mda: error: tomas.lind: el mensaje excedería el tamaño máximo del buzón para este"
    " destinatario",
    "mda: erro: tomas.lind: cota da caixa de correio excedida para este destinatário",
    "mda: erro: tomas.lind: a mensagem excederia o tamanho máximo de caixa de correio para esse"
    " destinatário",
    "mda: error: tomas.lind: пользователь превысил квоту на размер почтового ящика",
    "mda: error: tomas.lind: прием сообщения превысил бы максимальный размер почтового ящика для"
    " этого адресата",
    # the catalogue's ten other languages (Danish has no msgstr for these msgids)
    "mda: error: tomas.lind: s'ha excedit la quota de bústia per a aquest destinatari",
    "mda: error: tomas.lind: el missatge excediria la mida màxima de bústia per a aquest"
    " destinatari",
    "mda: virhe: tomas.lind: tämän vastaanottajan sähköpostilaatikkokiintiö ylitettiin",
    "mda: virhe: tomas.lind: viesti ylittäisi tämän vastaanottajan sähköpostilaatikon enimmäiskoon",
    "mda: error: tomas.lind: kuota kotak surat dilewati untuk penerima ini",
    "mda: error: tomas.lind: pesan akan melebihi ukuran maksimal kotak surat untuk penerima ini",
    "mda: błąd: tomas.lind: przekroczono limit rozmiaru skrzynki pocztowej tego odbiorcy",
    "mda: błąd: tomas.lind: wiadomość przekroczyłaby dozwolony rozmiar skrzynki dla tego odbiorcy",
    "mda: error: tomas.lind: quota maibox-ului a fost depășită pentru acest recipient",
    "mda: error: tomas.lind: mesajul va depăși mărimea maximă a mailbox-ului pentru acest"
    " recipient",
    "mda: грешка: tomas.lind: квота сандучета је премашена за овог примаоца",
    "mda: грешка: tomas.lind: порука ће премашити највећу величину сандучета за овог примаоца",
    "mda: fel: tomas.lind: kvot för brevlåda överstigen för denna mottagare",
    "mda: fel: tomas.lind: meddelande skulle överskrida maximal storlek för den här mottagarens"
    " brevlåda",
    "mda: помилка: tomas.lind: вичерпано обмеження розміру скриньки для цього одержувача",
    "mda: помилка: tomas.lind: доставка повідомлення перевищила-б обмеження розміру скриньки для"
    " цього одержувача",
    "mda: lỗi: tomas.lind: hạn ngạch hộp thư bị vượt quá cho người nhận này",
    "mda: lỗi: tomas.lind: thư này sẽ vượt quá kích cỡ hộp thư tối đa cho người nhận này",
]
# "%s: no such user" in the catalogues whose words no rule read before round 75
NEW_UNKNOWN = [
    "mda: Fehler: tomas.lind: kein solcher Benutzer",
    "mda: error: tomas.lind: no existeix l'usuari",
    "mda: fejl: tomas.lind: ingen sådan bruger",
    "mda: error: tomas.lind: tidak ada pengguna seperti itu",
    "mda: błąd: tomas.lind: brak takiego użytkownika",
    "mda: error: tomas.lind: nu există user-ul",
    "mda: грешка: tomas.lind: нема таквог корисника",
    "mda: error: tomas.lind: ingen sådan användare",
    "mda: помилка: tomas.lind: немає такого користувача",
    "mda: lỗi: tomas.lind: không có người dùng như vậy",
]
UNKNOWN = [
    "mda: erreur: tomas.lind: utilisateur inconnu",
    "mda: error: tomas.lind: no existe ese usuario",
    "mda: erro: tomas.lind: usuário inexistente",
    "mda: error: tomas.lind: нет такого пользователя",
    "mda: virhe: tomas.lind: tuntematon käyttäjä",
]
NOT_WRITABLE = [
    "mda: Fehler: Postfach /var/mail/tomas.lind kann nicht geöffnet werden: Keine Berechtigung",
    "mda: erreur: impossible d'ouvrir la boîte aux lettres /var/mail/tomas.lind : Permission non"
    " accordée",
    "mda: error: cannot open mailbox /var/mail/tomas.lind: Отказано в доступе",
]


def _raw(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def _postfix(output: str, exit_status: int) -> bytes:
    # pipe(8): its text part's words before the output, its report's Diagnostic-Code the
    # output alone, in UTF-8 as mda wrote it
    words = "unknown user" if exit_status == 67 else "service unavailable"
    text = f"{words}. Command output: {output}"
    status = "5.1.1" if exit_status == 67 else "5.3.0"
    notice = postfix_notice(RECIPIENT, text, status=status, kind=FAILED_KIND, remote=None,
                            text=text, diagnostic=f"x-unix; {output}")  # fmt: skip
    return _raw(notice)


def _exim(output: str, exit_status: int) -> bytes:
    return _raw(exim_notice(RECIPIENT, exim_local_failure(RECIPIENT, output), own=True))


def _sendmail(output: str, exit_status: int) -> bytes:
    reason = "User unknown" if exit_status == 67 else "Service unavailable"
    code = "550 5.1.1" if exit_status == 67 else "554 5.0.0"
    report = sendmail_report(
        RECIPIENT, status="5.1.1" if exit_status == 67 else "5.5.0", remote=False,
        actual="tomas.lind@mx.example.net", diagnostic=f"X-Unix; {exit_status}",
    )  # fmt: skip
    notice = sendmail_notice(
        f"{output}\n{code} {reason}", [report],
        errors=f"<{RECIPIENT}>\n    (reason: {reason})\n", host="mx.example.net",
    )  # fmt: skip
    return _raw(notice)


MTAS = [_postfix, _exim, _sendmail]


def _verdict(raw: bytes) -> tuple[str, int | None, str | None]:
    _, found = classify_mail(raw)
    assert len(found) == 1
    return found[0].recipient, found[0].status, found[0].delivery


# --- the quota's words in five languages: over capacity (fail without round 75's rules) ---


@pytest.mark.parametrize("notice", MTAS)
@pytest.mark.parametrize("output", QUOTA)
def test_mdas_quota_in_its_translations_is_over_capacity(output: str, notice: object) -> None:
    assert callable(notice)
    assert _verdict(notice(output, 69)) == (RECIPIENT, 5, "failed")


@pytest.mark.parametrize(
    "output",
    [
        # the same words without their accents, as 8-bit-shy systems write them
        "mda: Fehler: tomas.lind: Postfachgroessenkontingent wurde fuer diesen Empfaenger"
        " ueberschritten",
        "mda: erreur: tomas.lind: depassement de quota de la boite aux lettres",
        "mda: error: tomas.lind: se excedio la cuota del buzon",
        "mda: erro: tomas.lind: a mensagem excederia o tamanho maximo de caixa de correio",
    ],
)
def test_the_quotas_words_without_accents_are_over_capacity(output: str) -> None:
    assert _verdict(_exim(output, 69)) == (RECIPIENT, 5, "failed")


@pytest.mark.parametrize("output", NEW_UNKNOWN)
def test_exims_notice_of_no_such_user_in_its_translations_is_an_unknown_user(output: str) -> None:
    # Exim's notice gives no exit status: the words alone
    assert _verdict(_exim(output, 67)) == (RECIPIENT, 2, "failed")


# --- what the classifier read before round 75 ---


@pytest.mark.parametrize("notice", MTAS)
@pytest.mark.parametrize("output", UNKNOWN)
def test_mdas_no_such_user_in_its_translations_is_an_unknown_user(
    output: str, notice: object
) -> None:
    assert callable(notice)
    assert _verdict(notice(output, 67)) == (RECIPIENT, 2, "failed")


@pytest.mark.parametrize("notice", [_postfix, _sendmail])
@pytest.mark.parametrize("output", NEW_UNKNOWN)
def test_no_such_user_with_the_exit_status_67_is_an_unknown_user(
    output: str, notice: object
) -> None:
    # Postfix's and Sendmail's notices give mda's exit 67 (EX_NOUSER) its status, 5.1.1
    assert callable(notice)
    assert _verdict(notice(output, 67)) == (RECIPIENT, 2, "failed")


@pytest.mark.parametrize("notice", MTAS)
@pytest.mark.parametrize("output", NOT_WRITABLE)
def test_a_mailbox_mda_cannot_open_stays_the_hosts_error(output: str, notice: object) -> None:
    assert callable(notice)
    assert _verdict(notice(output, 69)) == (RECIPIENT, 7, "failed")


@pytest.mark.parametrize(
    "output",
    [
        # words that name no full mailbox: a quota the sender exceeds, a message's size
        "mda: Fehler: die Nachricht ist zu groß",
        "mda: error: tomas.lind: el mensaje excede el tamaño permitido",
    ],
)
def test_other_words_of_size_are_no_full_mailbox(output: str) -> None:
    assert _verdict(_exim(output, 69))[1] != 5


# --- a report field's 8-bit bytes ---


def test_a_report_fields_utf8_is_read_as_utf8() -> None:
    raw = _postfix(QUOTA[0], 69)
    message = read_message(raw)
    reports = [p for p in message.walk() if p.get_content_type() == "message/delivery-status"]
    blocks = reports[0].get_payload()
    assert isinstance(blocks, list)
    text = "\n".join(block_text(b) for b in blocks)
    assert "Postfachgrößenkontingent wurde für diesen Empfänger überschritten" in text


def test_a_report_fields_other_8bit_is_read_as_latin1() -> None:
    raw = _postfix(NEW_UNKNOWN[0], 67)
    latin = raw.replace(b"kein solcher Benutzer", "Empf\u00e4nger".encode("latin-1"))
    message = read_message(latin)
    reports = [p for p in message.walk() if p.get_content_type() == "message/delivery-status"]
    blocks = reports[0].get_payload()
    assert isinstance(blocks, list)
    assert "Empfänger" in "\n".join(block_text(b) for b in blocks)


# --- the harness ---


def test_round_62s_runs_keep_their_ports_and_folders() -> None:
    run = mailutils.Run("mailutils_postfix", Path("/x/postfix-mta"), Path("/x/postfix"), 18800)
    assert run.lmtpd_ports == (18801, 18802)
    assert mailutils.language(run.lang) == []


def test_the_committed_set() -> None:
    mtas = tuple(f"mailutils_i18n_{more}{mta}" for more in ("", "more_")
                 for mta in ("postfix", "exim", "sendmail"))  # fmt: skip
    assert_committed_set(I18N_CASES, mtas, cases=(20, 20, 20, 40, 40, 40),
                         rows=(20, 20, 20, 40, 40, 40), senders=180, delayed=(0,) * 6,
                         split="dev", statuses={2, 5, 7})  # fmt: skip
