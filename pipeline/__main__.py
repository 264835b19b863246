import gc

from .cli import main

code = main()
# The process ends here. The collector's last passes over every object the run loaded (matplotlib, VTK, scipy, ...)
# would only delay the exit, by 0.3 s of a 5-s analysis; frozen objects are left out of them. atexit handlers (Ray's
# shutdown, logging's flush) and the closing of files run as usual.
gc.freeze()
raise SystemExit(code)
