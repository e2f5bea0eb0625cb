"""A stand-in ``mmdebstrap`` executable, for running ``bisector image build`` in seconds.

The real one downloads ~100 packages from Debian's archive and takes about a
minute.  :func:`install` puts an executable named ``mmdebstrap`` into a
directory (prepend it to ``PATH``): bisector's own code — the recipe, the
subprocess gate, the logged command line, host and client keys with the real
ssh-keygen, the init and sshd config, the real ``mke2fs -d`` disk, the cache
key and ``--rebuild`` — runs unchanged; only the bootstrap itself is scripted.
It lays out the few directories a bootstrapped Debian has that bisector then
writes into (and junk it must clean up), and appends its argv as one JSON line
to ``calls.jsonl`` next to itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCRIPT = '''#!{python}
import json, sys
from pathlib import Path

argv = sys.argv[1:]
with open({calls!r}, "a") as fh:
    fh.write(json.dumps(argv) + "\\n")
positional = [a for a in argv if not a.startswith("--")]
if len(positional) != 3:
    sys.exit("fake mmdebstrap: expected SUITE TARGET MIRROR, got " + repr(argv))
suite, target, mirror = positional
root = Path(target)
for d in ("etc/ssh", "sbin", "root", "usr/bin", "var/cache/apt/archives", "var/lib/apt/lists"):
    (root / d).mkdir(parents=True, exist_ok=True)
(root / "etc/ssh/ssh_host_rsa_key").write_text("a key the image must not keep\\n")
(root / "var/cache/apt/archives/junk.deb").write_bytes(b"junk")
(root / "var/lib/apt/lists/junk_Packages").write_text("junk\\n")
(root / "etc/debian_version").write_text("12.0\\n")
print("I: fake mmdebstrap: " + suite + " from " + mirror + " into " + target)
'''


def install(bindir: Path) -> Path:
    """Write ``bindir/mmdebstrap``; return the file its calls are appended to."""
    bindir.mkdir(parents=True, exist_ok=True)
    calls = bindir / "calls.jsonl"
    exe = bindir / "mmdebstrap"
    exe.write_text(SCRIPT.format(python=sys.executable, calls=str(calls)))
    exe.chmod(0o755)
    return calls


def calls(log: Path) -> list[list[str]]:
    """The argv of every call so far."""
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line]
