"""Run under a Python that has flufl.bounce: print {file: [addresses]} for the given files.

flufl.bounce is Mailman's bounce detector; it is the comparison, not a dependency, so the
benchmark runs it in its own interpreter (``--flufl-python``).
"""

import json
import sys
from email import message_from_binary_file

from flufl.bounce import all_failures

found = {}
for path in sys.argv[1:]:
    with open(path, "rb") as handle:
        message = message_from_binary_file(handle)
    try:
        temporary, permanent = all_failures(message)
    except Exception as exc:  # a detector crash counts as finding nobody
        print(f"{path}: {exc!r}", file=sys.stderr)
        temporary, permanent = set(), set()
    addresses = {
        (a.decode("utf-8", "replace") if isinstance(a, bytes) else str(a)).strip("<>").lower()
        for a in set(temporary) | set(permanent)
    }
    found[path] = sorted(addresses)
json.dump(found, sys.stdout)
