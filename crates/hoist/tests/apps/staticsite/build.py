"""The build of the static-assets test app: writes dist/ as a frontend build would, plus the
traps the gateway must not fall into (links out of the folder, names with odd bytes)."""

import os

version = open("version.txt").read().strip()
# A content hash in the name, as bundlers write it; each version has its own.
script = {"v1": "app.3f9c1a2b.js", "v2": "app.7d2e4c1f.js"}[version]

os.makedirs("dist/docs", exist_ok=True)
with open("dist/index.html", "w") as f:
    f.write(f"<!doctype html><title>site {version}</title><script src=\"/{script}\"></script>\n")
with open(f"dist/{script}", "w") as f:
    f.write(f"console.log('bundle {version}');\n" + "export const answer = 42;\n" * 200)
with open("dist/style.css", "w") as f:
    f.write("".join(f".rule-{i} {{ color: #{i % 4096:03x}; margin: {i % 17}px; }}\n" for i in range(2000)))
with open("dist/docs/index.html", "w") as f:
    f.write("<h1>docs</h1>\n")
# 1 MiB that does not compress: bytes of a simple generator, for the range request.
state = 2463534242
data = bytearray()
while len(data) < 1 << 20:
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    data += state.to_bytes(4, "little")
with open("dist/big.bin", "wb") as f:
    f.write(bytes(data[: 1 << 20]))
# Links out of the folder: to a host file and to the app's own secret beside dist/.
os.symlink("/etc/passwd", "dist/passwd")
os.symlink("../secret.txt", "dist/up.txt")
# Names no URL means the same way to every client.
with open(b"dist/odd\xffname.txt", "w") as f:
    f.write("odd bytes\n")
with open("dist/tab\tname.txt", "w") as f:
    f.write("a tab\n")
