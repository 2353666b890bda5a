"""A hostile sdist's setup.py (tests/test_sandbox.py): a metadata build runs it; it tries to reach outside first.

hostile.json (written into the sdist by the test) names the repository and a listening port. Any escape that
works ends the build with "escaped: ..."; otherwise it declares its metadata.
"""

import json
import os
import socket

from setuptools import setup

with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "hostile.json")) as handle:
    config = json.load(handle)
escapes = []
for path in (os.path.join(config["repo"], "rewheel-hostile-escape"), "/root/rewheel-hostile-escape"):
    try:
        with open(path, "w") as handle:
            handle.write("escaped\n")
        escapes.append("wrote " + path)
    except OSError:
        pass
try:
    socket.create_connection(("127.0.0.1", config["port"]), timeout=5).close()
    escapes.append("connected to 127.0.0.1")
except OSError:
    pass
try:
    with open("/etc/shadow") as handle:
        if "root:" in handle.read():
            escapes.append("read /etc/shadow")
except OSError:
    pass
leaked = [name for name in os.environ if "PASSWORD" in name or name.startswith("REWHEEL_")]
if leaked:
    escapes.append("saw " + ", ".join(leaked))
if escapes:
    raise SystemExit("escaped: " + "; ".join(escapes))

setup(name="hostile-sdist", version="1.0", py_modules=[], install_requires=["six>=1.16"])
