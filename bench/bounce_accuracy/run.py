"""Bounce classification accuracy against the shared corpus (a benchmark, not a test).

    .venv/bin/python bench/bounce_accuracy/run.py [--corpus DIR] [--json OUT] [--misses]

Reports, against ``labels.jsonl`` and ``provider_replies.jsonl`` of ``<repo>/../shared/corpus``:
status accuracy, recipient accuracy, failed/deferred accuracy, non-bounce recognition, a
confusion matrix, provider-reply accuracy, mails per second on one core, and the recipient
accuracy of flufl.bounce (Mailman's detector) over the same mails when a Python with it is
available (``--flufl-python``, default /tmp/flufl/bin/python).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mtas.cases import committed as committed_labels
from mtas.cases import splits as generated_splits
from published import PUBLISHED
from published import replies as published_replies
from wider_corpus import corpus_dir
from wider_corpus import labels as wider_labels

from postline.bounce.classify import classify_reply
from postline.bounce.mail import Kind
from postline.bounce.mail.replies import enhanced_status, reply_code
from postline.bounce.verdicts import classify_mail

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "bounces"
GENERATED_ENV = "POSTLINE_GENERATED_BOUNCES"
STATUSES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 99]
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")


def _placeholder(recipient: str) -> bool:
    # sisimai invents an address when a report names nobody; no parser can find it.
    return recipient.endswith(".invalid")


def _found_recipients(report: Any, verdicts: list[Any]) -> set[str]:
    if report.kind is Kind.BOUNCE:
        return {v.recipient.lower() for v in verdicts}
    if report.kind is Kind.FEEDBACK:
        return {r.lower() for r in report.feedback_recipients}
    return {r.recipient.lower() for r in report.recipients}


def _why(row: dict[str, Any]) -> str:
    return str(row.get("sisimai_reason") or row.get("note") or "")


def read_labels(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def evaluate_mails(corpus: Path, show_misses: bool) -> dict[str, Any]:
    labels = read_labels(corpus / "sisimai" / "labels.jsonl")
    return evaluate_rows(corpus / "sisimai", labels, show_misses)


def evaluate_rows(base: Path, labels: list[dict[str, Any]], show_misses: bool) -> dict[str, Any]:
    """Score labelled rows (``file`` relative to ``base``); a row whose ``recipient`` is null
    names no address a parser could find, and is scored on its status only."""
    by_file: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in labels:
        by_file[row["file"]].append(row)
    results = {}
    for name in by_file:
        raw = (base / name).read_bytes()
        results[name] = classify_mail(raw)

    status_ok = status_n = rcpt_ok = rcpt_n = deliv_ok = deliv_n = kind_ok = sent_ok = 0
    extra = 0  # addresses reported as failed that no row of their mail names
    disagreements: list[dict[str, object]] = []
    confusion: dict[int, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    misses: list[str] = []
    for name, rows in by_file.items():
        report, verdicts = results[name]
        found = _found_recipients(report, verdicts)
        by_rcpt = {v.recipient.lower(): v for v in verdicts}
        labelled = [r for r in rows if r["mapped_status"] is not None]
        named = {r["recipient"].lower() for r in labelled if r["recipient"]}
        if named and report.kind is Kind.BOUNCE:
            others = sorted(found - named - {v.final_recipient.lower() for v in verdicts})
            extra += len(others)
            misses.extend(f"EXTRA {name}: {address}" for address in others)
        if any(r["mapped_status"] is not None for r in rows) != (report.kind is Kind.BOUNCE):
            disagreements.append({"file": name, "check": "kind", "postline": str(report.kind)})
        for row in rows:
            expected_bounce = row["mapped_status"] is not None
            kind_ok += expected_bounce == (report.kind is Kind.BOUNCE)
            recipient = (row["recipient"] or "").lower()
            if recipient and not _placeholder(recipient):
                rcpt_n += 1
                hit = recipient in found
                rcpt_ok += hit
                # The label names the address an alias or a forwarding led to, and Postline
                # reported the one the mail was sent to (the mail says which led where).
                sent_ok += hit or recipient in {v.final_recipient.lower() for v in verdicts}
                if not hit:
                    misses.append(f"RCPT {name}: want {row['recipient']} got {sorted(found)}")
                    item = {"file": name, "check": "recipient", "recipient": row["recipient"],
                            "postline": ", ".join(sorted(found)) or "none"}  # fmt: skip
                    sent = [v.recipient for v in verdicts if v.final_recipient.lower() == recipient]
                    if sent:
                        item["evidence"] = f"the label is where {sent[0]} was forwarded or expanded"
                    disagreements.append(item)
            if not expected_bounce:
                continue
            verdict = by_rcpt.get(recipient)
            if verdict is None and len(labelled) == 1 and len(verdicts) == 1:
                verdict = verdicts[0]  # the mail's one failure, under another address
            status_n += 1
            got = verdict.status if verdict is not None else 0
            confusion[row["mapped_status"]][got] += 1
            if got == row["mapped_status"]:
                status_ok += 1
            else:
                reason = verdict.reason[:160] if verdict else "-"
                code = f"{verdict.reply_code} {verdict.enhanced_status}" if verdict else ""
                misses.append(
                    f"STATUS {name}: want {row['mapped_status']} ({_why(row)}) "
                    f"got {got} [{code}] {reason}"
                )
                disagreements.append(
                    {
                        "file": name,
                        "check": "status",
                        "recipient": row["recipient"],
                        "label": f"{row['mapped_status']} ({_why(row)})",
                        "postline": f"{got} ({verdict.rule})" if verdict else "none",
                        "evidence": " ".join(f"{code} {reason}".split())[:160] or "none",
                    }
                )
            if row["delivery"] and verdict is not None:
                deliv_n += 1
                deliv_ok += verdict.delivery == row["delivery"]
                if verdict.delivery != row["delivery"]:
                    misses.append(f"DELIVERY {name}: want {row['delivery']} got {verdict.delivery}")
    if show_misses:
        print("\n".join(sorted(misses)))
    # Rows whose evidence is the same (reply code, status, diagnostic with addresses masked)
    # but whose labels differ: no classifier of that evidence can get them all right.
    groups: dict[tuple[object, ...], collections.Counter[int]] = collections.defaultdict(
        collections.Counter
    )
    for name, rows in by_file.items():
        _, verdicts = results[name]
        by_rcpt = {v.recipient.lower(): v for v in verdicts}
        for row in rows:
            verdict = by_rcpt.get((row["recipient"] or "").lower())
            if row["mapped_status"] is None or verdict is None:
                continue
            text = _ADDRESS.sub("<address>", verdict.reason.lower())
            groups[(verdict.reply_code, verdict.enhanced_status, text)][row["mapped_status"]] += 1
    conflicting = sum(sum(c.values()) - max(c.values()) for c in groups.values())
    return {
        "mails": len(by_file),
        "rows": len(labels),
        "status": [status_ok, status_n],
        "recipients": [rcpt_ok, rcpt_n],
        "recipients_sent_to": [sent_ok, rcpt_n],
        "extra_recipients": extra,
        "delivery": [deliv_ok, deliv_n],
        "kind": [kind_ok, len(labels)],
        "label_conflicts": conflicting,
        "disagreements": disagreements,
        "confusion": {str(k): dict(v) for k, v in sorted(confusion.items())},
    }


def evaluate_wider(
    wider: Path | None, show_misses: bool, show_unseen: bool = False
) -> dict[str, dict[str, Any]]:
    """Each split (dev, unseen) of the wider corpus (``wider_corpus.yaml``, the mails in
    ``wider``), scored like the shared one. The unseen set's misses are listed only when asked
    for by name (``--unseen-misses``, to describe what a round left), so that ``--misses``,
    read while rules are written, never shows them."""
    if wider is None or not wider.is_dir():
        return {}
    return {
        split: evaluate_split(wider, rows, "wider corpus", split, show_misses, show_unseen)
        for split, rows in by_split(wider_labels()).items()
    }


def _split_field(row: Any) -> str:
    return str(row["split"])


def by_split(
    labels: Sequence[Any], split_of: Callable[[Any], str] = _split_field
) -> dict[str, list[Any]]:
    """The labelled rows of each split that has any, development first (``split_of``: a
    row's split, by default its ``split`` field; a published reply's is its attribute)."""
    splits = {split: [r for r in labels if split_of(r) == split] for split in ("dev", "unseen")}
    return {split: rows for split, rows in splits.items() if rows}


def misses_listed(name: str, split: str, show_misses: bool, show_unseen: bool) -> bool:
    """Whether a split's misses are listed (an unseen split's only by name,
    ``--unseen-misses``, so that ``--misses``, read while rules are written, never shows
    them); if so, the heading of the list is printed."""
    listed = show_unseen if split == "unseen" else show_misses
    if listed:
        print(f"--- {name}, {split} set")
    return listed


def evaluate_split(
    base: Path,
    rows: list[dict[str, Any]],
    name: str,
    split: str,
    show_misses: bool,
    show_unseen: bool,
) -> dict[str, Any]:
    """One split's figures; its misses listed when asked for (``misses_listed``)."""
    listed = misses_listed(name, split, show_misses, show_unseen)
    figures = evaluate_rows(base, rows, listed)
    figures.pop("disagreements", None)
    return figures


def evaluate_wider_by_source(wider: Path | None) -> dict[str, dict[str, dict[str, Any]]]:
    """Each split of the wider corpus, source by source (``--by-source``): a source whose
    rows were split between the sets (crisp-bounce-parser's, round 13) is measured on each
    part. No misses are listed."""
    if wider is None or not wider.is_dir():
        return {}
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for split, rows in by_split(wider_labels()).items():
        for source in sorted({r["file"].partition("/")[0] for r in rows}):
            part = [r for r in rows if r["file"].partition("/")[0] == source]
            figures = evaluate_rows(wider, part, False)
            figures.pop("disagreements", None)
            found.setdefault(split, {})[source] = figures
    return found


def generated_labels(folder: Path) -> list[dict[str, Any]]:
    """The rows of a folder of MTA-made notices (``mta_bounces.py generate DIR``) in the shape
    the bench scores. For an MTA whose cases ``mta_cases.yaml`` holds, the label and split
    are the ones committed there (a round moves a set to ``dev`` there, not in the generated
    folder); other MTAs' rows are taken as generated."""
    splits = generated_splits()
    labels = committed_labels()
    rows = []
    for row in read_labels(folder / "labels.jsonl"):
        label = labels.get((row["file"], row["recipient"]))
        if row["mta"] in splits and label is None:
            continue  # a case no longer in the committed file
        rows.append(
            {
                "file": row["file"],
                "split": splits.get(row["mta"], row["split"]),
                "mta": row["mta"],
                "recipient": row["recipient"],
                "mapped_status": label.status if label else row["status"],
                "delivery": label.delivery if label else row["delivery"],
                "note": label.note if label else row["note"],
            }
        )
    return rows


def evaluate_generated(
    folder: Path | None, show_misses: bool, show_unseen: bool
) -> dict[str, dict[str, Any]]:
    """Each split of the MTA-made notices, and each MTA within it, scored like the wider
    corpus. As there, an unseen split's misses are listed only when asked for by name."""
    if folder is None or not (folder / "labels.jsonl").exists():
        return {}
    found: dict[str, dict[str, Any]] = {}
    for split, rows in by_split(generated_labels(folder)).items():
        found[split] = evaluate_split(
            folder, rows, "MTA-made notices", split, show_misses, show_unseen
        )
        for mta in sorted({r["mta"] for r in rows}):
            part = evaluate_rows(folder, [r for r in rows if r["mta"] == mta], False)
            part.pop("disagreements", None)
            found[f"{split} / {mta}"] = part
    return found


def evaluate_replies(corpus: Path, show_misses: bool) -> dict[str, Any]:
    ok = temp_ok = n = 0
    for line in (corpus / "provider_replies.jsonl").open():
        row = json.loads(line)
        reply = row["reply"]
        verdict = classify_reply(reply_code(reply), enhanced_status(reply), reply)
        n += 1
        ok += verdict.status == row["expected_status"]
        temp_ok += (not verdict.permanent) == row["temporary"]
        if show_misses and verdict.status != row["expected_status"]:
            print(f"REPLY want {row['expected_status']} got {verdict.status}: {reply[:150]}")
    return {"status": [ok, n], "temporary": [temp_ok, n]}


def evaluate_published(
    path: Path | None, show_misses: bool, show_unseen: bool
) -> dict[str, dict[str, Any]]:
    """Providers' published replies (``published_replies.yaml``), each split and each provider
    and round within it: status and temporary per reply, as for the shared provider replies.
    As for the other sets, an unseen split's misses are listed only when asked for by name."""
    if path is None or not path.exists():
        return {}
    found: dict[str, dict[str, Any]] = {}
    for split, part in by_split(published_replies(path), lambda r: r.split).items():
        listed = misses_listed("providers' published replies", split, show_misses, show_unseen)
        by_provider: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
        by_round: dict[int, list[int]] = collections.defaultdict(lambda: [0, 0])
        ok = temp_ok = 0
        for row in part:
            line = row.line
            verdict = classify_reply(reply_code(line), enhanced_status(line), line)
            hit = verdict.status == row.status
            ok += hit
            temp_ok += (not verdict.permanent) == row.temporary
            by_round[row.round][0] += hit
            by_round[row.round][1] += 1
            counts = by_provider[row.provider]
            counts[0] += hit
            counts[1] += (not verdict.permanent) == row.temporary
            counts[2] += 1
            if listed and not hit:
                print(
                    f"PUBLISHED want {row.status} got {verdict.status} ({verdict.reason}) "
                    f"[{row.provider}] {line[:150]}"
                )
            elif listed and (not verdict.permanent) != row.temporary:
                print(f"PUBLISHED TEMPORARY want {row.temporary} [{row.provider}] {line[:150]}")
        found[split] = {
            "status": [ok, len(part)],
            "temporary": [temp_ok, len(part)],
            "providers": {
                name: {"status": [c[0], c[2]], "temporary": [c[1], c[2]]}
                for name, c in sorted(by_provider.items())
            },
            "rounds": {number: list(c) for number, c in sorted(by_round.items())},
        }
    return found


def throughput(corpus: Path, seconds: float = 5.0) -> tuple[float, float]:
    """(mails per CPU second, mails per wall-clock second), parse + classify, one process.

    CPU time is what one core does whatever else runs on the machine; the wall-clock rate
    drops when other processes share the core."""
    mails = [p.read_bytes() for p in sorted((corpus / "sisimai" / "eml").glob("*.eml"))]
    done = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        for raw in mails:
            classify_mail(raw)
        done += len(mails)
    return done / (time.process_time() - cpu_start), done / (time.perf_counter() - start)


def flufl(corpus: Path, python: Path) -> dict[str, Any] | None:
    if not python.exists():
        return None
    labels = [json.loads(line) for line in (corpus / "sisimai" / "labels.jsonl").open()]
    files = sorted({row["file"] for row in labels})
    script = Path(__file__).with_name("flufl_scan.py")
    out = subprocess.run(
        [str(python), str(script), *(str(corpus / "sisimai" / f) for f in files)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = json.loads(out)
    ok = n = 0
    for row in labels:
        if _placeholder(row["recipient"]):
            continue
        n += 1
        ok += row["recipient"].lower() in found[str(corpus / "sisimai" / row["file"])]
    return {"recipients": [ok, n]}


DISAGREEMENTS_HEADER = """\
# Corpus rows where Postline's answer differs from the label, with the evidence it read.
# tests/unit/test_bounce_corpus.py expects exactly these, so a change of the classifier either
# way (a fix or a regression) fails it until this file is regenerated and reviewed:
#     .venv/bin/python bench/bounce_accuracy/run.py --write-disagreements \\
#         tests/unit/test_bounce_corpus.yaml
# Most are judgement calls the labels make from the reference library's vendor modules (see
# bench/README.md, "Bounce classification accuracy").
"""


def write_disagreements(path: Path, rows: list[dict[str, object]]) -> None:
    import yaml

    ordered = sorted(rows, key=lambda r: (str(r["file"]), str(r["check"]), str(r.get("recipient"))))
    body = yaml.safe_dump(
        {"disagreements": ordered}, allow_unicode=True, sort_keys=False, width=100
    )
    path.write_text(DISAGREEMENTS_HEADER + body, encoding="utf-8")


def _pct(pair: list[int]) -> str:
    ok, n = pair
    return f"{100 * ok / n:.1f} % ({ok}/{n})" if n else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--misses",
        action="store_true",
        help="list every miss of the shared corpus and of the wider corpus's development set",
    )
    parser.add_argument(
        "--unseen-misses",
        action="store_true",
        help="list the wider unseen set's misses (to describe them after a round, never to "
        "write rules from)",
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="throughput run length")
    parser.add_argument(
        "--wider",
        type=Path,
        default=corpus_dir(),
        help="the folder of the wider corpus's mails (wider_corpus.py fetch; default "
        "$POSTLINE_WIDER_CORPUS); skipped if absent",
    )
    parser.add_argument(
        "--by-source",
        action="store_true",
        help="also give each split's figures source by source",
    )
    parser.add_argument(
        "--generated",
        type=Path,
        default=Path(os.environ[GENERATED_ENV]) if os.environ.get(GENERATED_ENV) else None,
        help="a folder of MTA-made notices (mta_bounces.py generate DIR; default "
        f"${GENERATED_ENV}); skipped if absent",
    )
    parser.add_argument(
        "--published",
        type=Path,
        default=PUBLISHED,
        help="providers' published SMTP replies (default: the committed published_replies.yaml)",
    )
    parser.add_argument("--flufl-python", type=Path, default=Path("/tmp/flufl/bin/python"))
    parser.add_argument(
        "--write-disagreements",
        type=Path,
        help="write the rows where Postline differs from the labels (what the corpus test "
        "expects, tests/unit/test_bounce_corpus.yaml) and exit",
    )
    args = parser.parse_args()
    if not (args.corpus / "sisimai" / "labels.jsonl").exists():
        sys.exit(f"corpus not found at {args.corpus}")

    mails = evaluate_mails(args.corpus, args.misses)
    if args.write_disagreements:
        write_disagreements(args.write_disagreements, mails["disagreements"])
        return
    replies = evaluate_replies(args.corpus, args.misses)
    wider = evaluate_wider(args.wider, args.misses, args.unseen_misses)
    generated = evaluate_generated(args.generated, args.misses, args.unseen_misses)
    published = evaluate_published(args.published, args.misses, args.unseen_misses)
    rate, wall_rate = throughput(args.corpus, args.seconds)
    compared = flufl(args.corpus, args.flufl_python)

    print(f"bounce mails: {mails['mails']} files, {mails['rows']} labelled rows")
    print(f"  status accuracy           {_pct(mails['status'])}")
    print(f"  recipient accuracy        {_pct(mails['recipients'])}")
    print(
        f"    counting the address sent to where the label is its forwarding target: "
        f"{_pct(mails['recipients_sent_to'])}"
    )
    print(f"  failed/deferred accuracy  {_pct(mails['delivery'])}")
    print(f"  bounce / not-a-bounce     {_pct(mails['kind'])}")
    print(
        f"  label conflicts           {mails['label_conflicts']} rows share their evidence "
        "(code, status, text) with rows labelled otherwise"
    )
    print(
        f"provider replies: status {_pct(replies['status'])}, "
        f"temporary {_pct(replies['temporary'])}"
    )
    print(
        f"throughput: {rate:,.0f} mails per CPU second, one core, parse + classify "
        f"({wall_rate:,.0f}/s of wall-clock time; load average {os.getloadavg()[0]:.1f})"
    )
    if compared is not None:
        print(f"flufl.bounce recipient accuracy: {_pct(compared['recipients'])}")
    else:
        print(f"flufl.bounce: not run ({args.flufl_python} missing)")
    for split, figures in wider.items():
        print(
            f"wider corpus, {split} set ({figures['mails']} mails): "
            f"status {_pct(figures['status'])}, recipients {_pct(figures['recipients'])} "
            f"(+{figures['extra_recipients']} not failed), "
            "failed/deferred "
            f"{_pct(figures['delivery'])}, bounce / not-a-bounce {_pct(figures['kind'])}"
        )
    if not wider:
        print(f"wider corpus: not run ({args.wider or '$POSTLINE_WIDER_CORPUS unset'})")
    for split, figures in generated.items():
        print(
            f"MTA-made notices, {split} ({figures['mails']} mails): "
            f"status {_pct(figures['status'])}, recipients {_pct(figures['recipients'])} "
            f"(+{figures['extra_recipients']} not failed), "
            f"failed/deferred {_pct(figures['delivery'])}, "
            f"bounce / not-a-bounce {_pct(figures['kind'])}"
        )
    if args.generated is not None and not generated:
        print(f"MTA-made notices: not run (no labels.jsonl in {args.generated})")
    for split, figures in published.items():
        print(
            f"providers' published replies, {split} ({figures['status'][1]} replies): "
            f"status {_pct(figures['status'])}, temporary {_pct(figures['temporary'])}"
        )
        for number, counts in figures["rounds"].items():
            print(f"  {split} / round {number}'s rows: status {_pct(counts)}")
        for name, part in figures["providers"].items():
            print(
                f"  {split} / {name}: status {_pct(part['status'])}, "
                f"temporary {_pct(part['temporary'])}"
            )
    by_source = evaluate_wider_by_source(args.wider) if args.by_source else {}
    for split, sources in by_source.items():
        for source, figures in sources.items():
            print(
                f"  {split} / {source} ({figures['mails']} mails): "
                f"status {_pct(figures['status'])}, recipients {_pct(figures['recipients'])} "
                f"(+{figures['extra_recipients']} not failed), "
                f"failed/deferred {_pct(figures['delivery'])}, "
                f"bounce / not-a-bounce {_pct(figures['kind'])}"
            )
    print("confusion matrix (rows: expected status, columns: classified; 0 = not found)")
    cols = [*STATUSES, 0]
    print("      " + "".join(f"{c:>5}" for c in cols))
    for expected, got in mails["confusion"].items():
        print(f"{expected:>5} " + "".join(f"{got.get(c, 0) or '.':>5}" for c in cols))
    if args.json:
        mails.pop("disagreements", None)
        figures = {
            "mails": mails,
            "replies": replies,
            "mails_per_cpu_second": rate,
            "mails_per_wall_second": wall_rate,
            "flufl": compared,
            "wider": wider,
            "wider_by_source": by_source,
            "generated": generated,
            "published": published,
        }
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
