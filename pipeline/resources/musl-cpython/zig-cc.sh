#!/bin/sh
case "$1" in
  -print-multiarch|--print-multiarch) echo @triplet@; exit 0;;
esac
for arg in "$@"; do
  case "$arg" in
    -c|-E|-S|-M|-MM|-shared) exec "@zig@" cc -target @triplet@ @cpu@ "$@";;
  esac
done
exec "@zig@" cc -target @triplet@ @cpu@ -dynamic "$@"
