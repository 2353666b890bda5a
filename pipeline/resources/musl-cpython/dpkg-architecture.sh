#!/bin/sh
echo @triplet@
