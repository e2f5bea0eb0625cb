"""olddefconfig: last assignment wins; symbols listed in ./unsupported vanish."""
import re
import sys
from pathlib import Path

tree, config = Path(sys.argv[1]), Path(sys.argv[2])
drop = set((tree / "unsupported").read_text().split()) if (tree / "unsupported").exists() else set()
values = {}
for line in config.read_text().splitlines():
    m = re.match(r"^(CONFIG_\w+)=(.*)$", line) or re.match(r"^# (CONFIG_\w+) is not set$", line)
    if m:
        values[m.group(1)] = m.group(2) if m.lastindex == 2 else "n"
out = [f"{k}={v}" if v != "n" else f"# {k} is not set" for k, v in sorted(values.items())
       if k not in drop]
config.write_text("\n".join(out) + "\n")
