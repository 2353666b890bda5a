"""A hostile build step (tests/test_sandbox.py): writes its own build output, then tries to reach outside.

Prints "built", then "contained" when every escape failed, else "escaped: ..." naming them.
"""

import os
import socket
import tempfile

os.makedirs("build", exist_ok=True)
with open("build/out.o", "w") as handle:
    handle.write("object\n")
with tempfile.NamedTemporaryFile() as scratch:  # TMPDIR: the job's own scratch folder
    scratch.write(b"temporary")
print("built")

escapes = []
try:
    with open(os.path.join(os.environ["HOSTILE_REPO"], "rewheel-hostile-escape"), "w") as handle:
        handle.write("escaped\n")
    escapes.append("wrote to the repository")
except OSError:
    pass
try:
    socket.create_connection(("127.0.0.1", int(os.environ["HOSTILE_PORT"])), timeout=5).close()
    escapes.append("connected to 127.0.0.1")
except OSError:
    pass
try:
    socket.getaddrinfo("files.example.org", 443)
    escapes.append("resolved a host name")
except OSError:
    pass
if os.environ.get("TWINE_PASSWORD"):
    escapes.append("read TWINE_PASSWORD")
try:
    with open("/etc/shadow") as handle:
        if "root:" in handle.read():
            escapes.append("read /etc/shadow")
except OSError:
    pass
print("escaped: " + "; ".join(escapes) if escapes else "contained")
