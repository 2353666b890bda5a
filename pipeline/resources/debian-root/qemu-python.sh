#!/bin/sh
# Debian @debian_arch@ python@version@ under qemu-user; built by rewheel.
ROOT="$(dirname "$(dirname "$(readlink -f "$0")")")/root"
exec @qemu@ -L "$ROOT" "$ROOT/usr/bin/python@version@" "$@"
