"""Bounce notices made here by real MTAs, for a generated unseen set (issue #16, round 21).

Each MTA is run from its Debian package on loopback (``packages.extract``: ``apt-get download``
and ``dpkg -x`` into ``/tmp/mta-<name>``, never installed), sends mail whose failure is made on
purpose, and returns its notice to a capture server, so each notice's label is known by how the
case was built. Haraka, of which apt finds no package here, is installed from npm at a pinned
version under ``/tmp/mta-haraka`` (round 33). One module per MTA (``postfix``, ``exim``,
``sendmail``, ``opensmtpd``, ...), each with::

    def generate(out: Path, destination: Destination) -> list[Row]

``out`` is the MTA's own folder (``DIR/<mta>``): the module writes each notice there as
``<case>.eml`` and returns one :class:`Row` per labelled recipient (``file`` relative to
``DIR``, so ``<mta>/<case>.eml``). ``mta_bounces.py generate DIR`` runs them and writes
``DIR/labels.jsonl``. A module stops every process it started before it returns, also when it
fails. What the modules share is in ``cases`` (the replies scripted, the mail submitted, the
notices collected and labelled) and ``host`` (a private mount and UTS namespace, the wait for a
listener, stopping an MTA's processes); each module keeps its MTA's own configuration.
"""

from __future__ import annotations

from .destination import Destination, Reply
from .rows import Row

# Every MTA a module may exist for; the driver runs those whose module exists.
MTAS = (
    "postfix",
    "exim",
    "sendmail",
    "opensmtpd",
    "dma",
    "courier",
    "nullmailer",
    "haraka",
    "filters_postfix",
    "filters_exim",
    "amavis",
    "sieve",
    "twisted_mail",
    "fetchmail",
    "vacation",
    "receipts",
    "mlmmj",
    "exim_auto",
    "sendmail_auto",
    "vacation_program",
    "lda_postfix",
    "lda_exim",
    "lda_sendmail",
    "own_postfix",
    "own_exim",
    "own_sendmail",
    "own_protocol_postfix",
    "own_protocol_exim",
    "dns_postfix",
    "dns_exim",
    "dns_sendmail",
    "dns_opensmtpd",
    "dns_courier",
    "dns_haraka",
    "dns_dma",
    "xmail",
    "policy_postfix",
    "policy_exim",
    "policy_sendmail",
    "qmail",
    "masqmail",
    "zmailer",
    "chasquid",
    "cyrus_postfix",
    "cyrus_exim",
    "cyrus_sendmail",
    "mailman3",
    "qmail_smtpd_postfix",
    "qmail_smtpd_exim",
    "qmail_smtpd_sendmail",
    "qpsmtpd_postfix",
    "qpsmtpd_exim",
    "qpsmtpd_sendmail",
    "mailfromd",
    "dns_qmail",
    "spf_postfix",
    "spf_exim",
    "spf_sendmail",
    "sympa",
    "smartlist",
    "schleuder",
    "gnarwl",
    "milters_postfix",
    "milters_exim",
    "milters_sendmail",
    "mimedefang_postfix",
    "mimedefang_exim",
    "mimedefang_sendmail",
    "greylist_postfix",
    "greylist_exim",
    "greylist_sendmail",
    "exim_receiving_postfix",
    "exim_receiving_exim",
    "exim_receiving_sendmail",
    "restrictions_postfix",
    "restrictions_exim",
    "restrictions_sendmail",
    "policy_daemons_postfix",
    "policy_daemons_exim",
    "policy_daemons_sendmail",
    "mailutils_postfix",
    "mailutils_exim",
    "mailutils_sendmail",
    "sendmail_checks_postfix",
    "sendmail_checks_exim",
    "sendmail_checks_sendmail",
    # round 64: a receiving Haraka's own plugins behind Postfix, Exim and Sendmail
    "haraka_receiving_postfix",
    "haraka_receiving_exim",
    "haraka_receiving_sendmail",
    # round 65 (r65): a receiving OpenSMTPD's own rules and filters
    "opensmtpd_receiving_postfix",
    "opensmtpd_receiving_exim",
    "opensmtpd_receiving_sendmail",
    # round 66: a receiving Courier's own checks
    "courier_receiving_postfix",
    "courier_receiving_exim",
    "courier_receiving_sendmail",
    # round 67: SMTP content-filter proxies in front of a receiving Postfix
    "proxies_postfix",
    "proxies_exim",
    "proxies_sendmail",
    # round 68: a receiving Exim's content scanning (spamd, clamd, the MIME ACL, sa-exim)
    "exim_content_postfix",
    "exim_content_exim",
    "exim_content_sendmail",
    # round 69: a receiving OpenSMTPD's filter programs (rspamd, senderscore)
    "opensmtpd_filters_postfix",
    "opensmtpd_filters_exim",
    "opensmtpd_filters_sendmail",
    # round 70: content-filter milters behind a receiving Sendmail
    "sendmail_milters_postfix",
    "sendmail_milters_exim",
    "sendmail_milters_sendmail",
    # round 75: Mailutils' mda in other languages (its own catalogues), in MTAs' notices
    "mailutils_i18n_postfix",
    "mailutils_i18n_exim",
    "mailutils_i18n_sendmail",
    "mailutils_i18n_more_postfix",
    "mailutils_i18n_more_exim",
    "mailutils_i18n_more_sendmail",
    # round 76: older MTAs built from source as the receiving server (XMail, ZMailer)
    "xmail_receiving_postfix",
    "xmail_receiving_exim",
    "xmail_receiving_sendmail",
    "zmailer_receiving_postfix",
    "zmailer_receiving_exim",
    "zmailer_receiving_sendmail",
    # round 77: what list managers send in other languages, from their own catalogues
    "sympa_i18n",
    "mailman3_i18n",
    # round 78: forwarding failures of a receiving Postfix (a mailbox that has moved, loops)
    "forwarding_postfix",
    "forwarding_exim",
    "forwarding_sendmail",
    "forwarding_srs_postfix",
    # round 79: milter-greylist (built from its repository's snapshot) behind a receiving
    # Postfix, spampd (SpamAssassin in an SMTP proxy) in front of one
    "greylist_milter_postfix",
    "greylist_milter_exim",
    "greylist_milter_sendmail",
    "spampd_postfix",
    "spampd_exim",
    "spampd_sendmail",
    # round 81: forwarding loops that qmail and Courier detect themselves (their own notices)
    "forwarding_qmail",
    "forwarding_courier",
    # round 81: round 78's SRS forward (postsrsd) with Exim and Sendmail sending
    "forwarding_srs_exim",
    "forwarding_srs_sendmail",
)

__all__ = ["MTAS", "Destination", "Reply", "Row"]
