#!/bin/sh
# musl CPython @version@ for @arch@ under qemu-user; built by rewheel.
HERE="$(dirname "$(dirname "$(readlink -f "$0")")")"
SYSROOT="$HERE/sysroot"
export QEMU_LD_PREFIX="$SYSROOT"
if [ ! -e /lib/@ldso@ ] && [ -e /proc/sys/fs/binfmt_misc/@binfmt_entry@ ] \
    && [ "$(id -u)" = 0 ] && unshare --mount true 2>/dev/null; then
  exec unshare --mount --propagation private -- /bin/sh -c '
    mount -t overlay rewheel-musl-loader -o "lowerdir=$1:$2" "$2" ||
      echo "rewheel: cannot overlay /lib/@ldso@; programs this interpreter starts may fail" >&2
    shift 2
    exec "$@"' sh "$(readlink -f "$SYSROOT/lib")" "$(readlink -f /lib)" \
    @qemu@ -L "$SYSROOT" "$HERE/bin/python@version@" "$@"
fi
exec @qemu@ -L "$SYSROOT" "$HERE/bin/python@version@" "$@"
