#!/bin/sh
# cargo's RUSTC_WRAPPER while rewheel builds a Rust std for a target ($1 is rustc, the rest its arguments).
# As rustc's own bootstrap does, panic_abort is compiled with panic=abort: a crate whose profile says
# panic = "abort" (orjson) links it as its panic runtime, and rustc refuses one compiled to unwind.
# Everything else unwinds, like a rustup std, so panic = "unwind" crates (PyO3's PanicException) work too.
case " $* " in
*" --crate-name panic_abort "*) exec "$@" -C panic=abort ;;
esac
exec "$@"
