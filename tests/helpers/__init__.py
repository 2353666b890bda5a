"""Helpers shared by the tests (and the benchmarks): import them from here, never from another test module,
so that a test file is only ever collected, never imported for its helpers."""
