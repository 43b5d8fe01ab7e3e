"""The encrypting list manager Schleuder's answers to a poster (round 58): Schleuder 4.0.3
(Debian 12's ``schleuder`` ``4.0.3-7+deb12u1``, GPL-3: only run, nothing of it enters this
repository) with Ruby 3.1 and the gems it needs from Debian's packages (:data:`PACKAGES`),
unpacked under ``/tmp/mta-schleuder/root`` (``apt-get download`` and ``dpkg -x``; never
installed); GnuPG is the system's.

Ruby and Schleuder find their code, settings and data at compiled-in paths (``/usr/lib/ruby``,
``/etc/schleuder``, ``/var/lib/schleuder``): everything runs in a mount namespace where the
unpacked ``usr`` is laid read-only over the system's and ``/etc`` and ``/var`` are seen
through writable layers under ``/tmp/mta-schleuder/run``. ``schleuder install`` makes its
database; the lists (:data:`LISTS`, domain ``hazel.test``, each with Schleuder's documented
list options) are made with Schleuder's ``ListBuilder`` (what ``schleuder-cli``'s API call
runs), each with an OpenPGP key GnuPG makes, their admin ``chair@walnut.test`` with a key of
ours. Mail comes in as Schleuder's documentation sets it up: a Postfix instance (under
``/tmp/mta-schleuder/postfix``, in the same namespace) is the final destination of
``hazel.test`` and pipes each list address's mail to ``schleuder work <address>`` through its
aliases (run as ``nobody``). Schleuder refuses a message by exiting 1 with its error on its
output, which Postfix's ``local`` puts in its bounce to the poster; what Schleuder sends
itself (its answers, its notices to the admins) goes over SMTP to that Postfix, which relays
``sender.test`` to the capture server and every other domain to the scripted server. The
cases are ``schleuder`` in ``schleuder_cases.yaml``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from . import postfix
from .cases import load, script_replies
from .destination import Destination
from .host import Namespace, Overlay
from .packages import extract
from .rows import Row

MTA = "schleuder"
ROOT = Path("/tmp/mta-schleuder")
RUN = ROOT / "run"
PORT = 8358  # 2558 + the helper's test port offset (5800)
DOMAIN = "hazel.test"
NOBODY = 65534
ADMIN = "chair@walnut.test"
PACKAGES = [
    "schleuder", "ruby3.1", "libruby3.1", "ruby", "libruby", "rubygems-integration",
    "ruby-rubygems", "ruby-net-telnet", "ruby-webrick", "ruby-xmlrpc", "ruby-sdbm", "rake",
    "ruby-concurrent", "ruby-i18n", "ruby-tzinfo", "ruby-zeitwerk", "ruby-activesupport",
    "ruby-activemodel", "ruby-activerecord", "ruby-bcrypt", "ruby-charlock-holmes",
    "libgpgme11", "ruby-gpgme", "ruby-mini-mime", "ruby-mail", "ruby-mail-gpg",
    "ruby-ruby2-keywords", "ruby-mustermann", "ruby-rack", "ruby-rack-protection", "ruby-tilt",
    "ruby-sinatra", "ruby-multi-json", "ruby-sinatra-contrib", "ruby-sqlite3", "ruby-thor",
    "ruby-eventmachine", "ruby-daemons", "thin",
]  # fmt: skip
# Each list's options (Schleuder's list settings, as list-defaults.yml names them).
LISTS: dict[str, dict[str, object]] = {
    "members": {"receive_from_subscribed_emailaddresses_only": True},
    "secret": {"receive_encrypted_only": True},
    "digest": {"max_message_size_kb": 2},
}
# The addresses of each list Postfix hands to Schleuder (Schleuder's documented aliases).
SUFFIXES = ("", "-request", "-owner", "-bounce", "-sendkey")
MAKE_LISTS = """\
require 'schleuder'
require 'json'
key = File.read(ARGV[0])
JSON.parse(ARGV[2]).each do |name, options|
  list, _ = Schleuder::ListBuilder.new({email: "#{name}@%(domain)s"}.merge(options),
                                       '%(admin)s', ARGV[1], key).run
  raise "list #{name}: #{list.inspect}" unless list.is_a?(Schleuder::List) && list.persisted?
end
"""


def _admin_key() -> tuple[Path, str]:
    """The admin's public key (a fresh ed25519 key, no passphrase) and its fingerprint."""
    home = ROOT / "admin-gnupg"
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(mode=0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    gpg = ["gpg", "--batch", "--passphrase", ""]
    subprocess.run([*gpg, "--quick-gen-key", f"Chair <{ADMIN}>", "ed25519", "default", "never"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    listed = subprocess.run([*gpg, "--with-colons", "--list-keys", ADMIN], env=env, check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    fingerprint = next(line.split(":")[9] for line in listed.splitlines() if line.startswith("fpr"))
    key = ROOT / "admin.asc"
    key.write_bytes(subprocess.run([*gpg, "--armor", "--export", ADMIN], env=env, check=True,
                                   capture_output=True).stdout)  # fmt: skip
    subprocess.run(["gpgconf", "--kill", "all"], env=env, check=False)
    return key, fingerprint


def _configure() -> None:
    """Fresh ``/etc`` and ``/var`` layers: Schleuder's settings (its SMTP server the Postfix
    instance), its keyword-handler and filter folders."""
    if RUN.exists():
        shutil.rmtree(RUN)
    for folder in ("etc", "etc-work", "var", "var-work", "local/keyword_handlers",
                   "local/filters"):  # fmt: skip
        (RUN / folder).mkdir(parents=True)
    shutil.copytree(ROOT / "root/etc/schleuder", RUN / "etc/schleuder")
    conf = RUN / "etc/schleuder/schleuder.yml"
    text = conf.read_text()
    for old, new in (
        ("  address: localhost\n", "  address: 127.0.0.1\n"),
        ("  port: 25\n", f"  port: {PORT}\n"),
        ("superadmin: root@localhost", f"superadmin: {ADMIN}"),
        ("/usr/local/lib/schleuder/keyword_handlers", str(RUN / "local/keyword_handlers")),
        ("/usr/local/lib/schleuder/filters", str(RUN / "local/filters")),
    ):
        text = text.replace(old, new, 1)
    conf.write_text(text)


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(PACKAGES, ROOT / "root")["schleuder"]
    built = load(MTA)
    script_replies(destination, built)
    _configure()
    key, fingerprint = _admin_key()
    mounts = [
        Overlay("/usr", lower=ROOT / "root/usr"),
        *(Overlay(f"/{name}", upper=RUN / name) for name in ("etc", "var")),
    ]
    script = ROOT / "make_lists.rb"
    script.write_text(MAKE_LISTS % {"domain": DOMAIN, "admin": ADMIN})
    with Namespace(MTA, mounts, grace=10.0) as namespace:
        namespace.run("schleuder", "install")
        done = subprocess.run(
            namespace.inside("ruby", str(script), str(key), fingerprint, json.dumps(LISTS)),
            capture_output=True, timeout=300,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"Schleuder's lists: {done.stderr.decode()[-2000:]}")
        for folder in ("/var/lib/schleuder", "/var/log/schleuder"):
            namespace.run("chown", "-R", f"{NOBODY}:{NOBODY}", folder)
    aliases = {
        f"{name}{suffix}": f'"|/usr/bin/schleuder work {name}{suffix}@{DOMAIN}"'
        for name in LISTS
        for suffix in SUFFIXES
    }
    routes = {
        "sender.test": f"smtp:[{destination.host}]:{destination.capture_port}",
        DOMAIN: "local:",
        "*": f"smtp:[{destination.host}]:{destination.port}",
    }
    master = postfix.LISTENER.format(port=PORT) + postfix.SERVICES
    postfix.configure(ROOT / "postfix", DOMAIN, master, routes, {"postmaster": "root", **aliases})
    rows = postfix.run(ROOT / "postfix", PORT, destination, built, out, MTA, mounts=mounts)
    return [replace(row, mta_version=f"Schleuder {version}, Postfix") for row in rows]
