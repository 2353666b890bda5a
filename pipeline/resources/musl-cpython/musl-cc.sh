#!/bin/sh
case "$1" in
  -print-multiarch|--print-multiarch) echo x86_64-linux-musl; exit 0;;
esac
exec musl-gcc "$@"
