"""bzImage: fails like a compiler on '#error'; else writes a bzImage-shaped file."""
import sys
from pathlib import Path

tree, out = Path(sys.argv[1]), Path(sys.argv[2])
with (out / "build-count").open("a") as fh:
    fh.write("1\n")
for src in sorted(tree.glob("*.c")):
    if "#error" in src.read_text():
        print(f"{src.name}:1:2: error: #error broken on purpose", file=sys.stderr)
        sys.exit(2)
img = bytearray(0x400)
img[0x202:0x206] = b"HdrS"
img[0x20E:0x210] = (0x100).to_bytes(2, "little")
version = b"6.1.0-fake (bisector@test) #1"
img[0x300:0x300 + len(version)] = version
dest = out / "arch" / "x86" / "boot" / "bzImage"
dest.parent.mkdir(parents=True, exist_ok=True)
dest.write_bytes(bytes(img) + b"".join(p.read_bytes() for p in sorted(tree.glob("*.c"))))
print("  BUILD   arch/x86/boot/bzImage")
