#!/bin/sh
exec "@zig@" @tool@ "$@"
