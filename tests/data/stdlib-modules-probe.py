"""Run by a target interpreter: the standard library modules real wheels import at import time, each made to do
real work (an import alone can pass on a half-built module). Prints one JSON object; any failure is a
traceback and a non-zero exit."""

import _decimal  # the C implementation, not the pure-Python fallback
import bz2
import ctypes
import json
import lzma
import sqlite3
import ssl
import zlib
from decimal import Decimal

payload = b"rewheel " * 4096
db = sqlite3.connect(":memory:")
db.execute("CREATE VIRTUAL TABLE notes USING fts5(body)")  # FTS5: compiled into the runtime's SQLite
db.executemany("INSERT INTO notes VALUES (?)", [("musl wheels",), ("glibc wheels",), ("musl loader",)])
(musl_rows,) = db.execute("SELECT count(*) FROM notes WHERE notes MATCH 'musl'").fetchone()
(json_value,) = db.execute("SELECT json_extract('{\"a\": [1, 2]}', '$.a[1]')").fetchone()
print(
    json.dumps(
        {
            "sqlite_version": sqlite3.sqlite_version,
            "sqlite_fts5_musl_rows": musl_rows,
            "sqlite_json": json_value,
            "bz2_round_trip": bz2.decompress(bz2.compress(payload)) == payload,
            "bz2_size": len(bz2.compress(payload)),
            "lzma_round_trip": lzma.decompress(lzma.compress(payload)) == payload,
            "lzma_xz_check": lzma.is_check_supported(lzma.CHECK_SHA256),
            "zlib_round_trip": zlib.decompress(zlib.compress(payload)) == payload,
            "ssl_openssl_version": ssl.OPENSSL_VERSION,
            "ssl_context": ssl.create_default_context().protocol.name,
            "ctypes_strlen": ctypes.CDLL(None).strlen(b"rewheel"),
            "decimal": str(Decimal(1) / Decimal(7)),
            "decimal_c": Decimal is _decimal.Decimal,
        }
    )
)
