
# A start-up that did not take must not be installed: the preparation checks for this line.
# Written unbuffered, so no stream in the snapshot holds it to print again in every process.
os.write(1, b"preloaded %d modules, the quick exit %s\n" % (len(sys.modules), _quick_exit.encode()))
