#!/bin/sh
echo "rewheel: error: the host's @name@ is hidden in a cross build for @target@: it describes host libraries; give the library as a recipe [[native]] entry (its own @name@ is then on PATH)" >&2
exit 1
