# Run once, when `secure-exec-sidecar prepare-python` pre-initialises the interpreter: every
# Python process then starts with these modules already imported, so importing them again is a
# dictionary lookup. The interpreter's `run` refreshes, at each start, what must not be shared
# between processes: argv, the environment, the standard streams, the clocks' bases and the
# seeds of `random` and `numpy.random`.

# What the interpreter's own start-up snapshot imports.
import encodings, io, os, sys, json, csv, re, _colorize

# What agent code imports most, and what took most of its start: about 0.8 s in every process.
import numpy
import pandas

# A preload that did not take must not be installed: the sidecar checks for this line. Written
# unbuffered, so no stream in the snapshot holds it to print again in every process.
os.write(1, b"preloaded %d modules\n" % len(sys.modules))
