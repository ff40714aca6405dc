# Run once, when `secure-exec-sidecar prepare-python` (or the simulator) pre-initialises the base
# interpreter: the install's own start-up imports (what its `python-snapshot.wasm` ran), then the
# quick exit (`quick_exit.py`, which follows), then the report the preparation checks for.
import encodings, io, os, sys, json, csv, re, _colorize

