#!/bin/sh
exec "@zig@" cc -target @triplet@ @cpu@ -E -I "@musl_stdarg_dir@" "$@"
