"""daemon1521: the 1521 electricity bill-payment line, answered by voice modems.

Every process of the project (the daemon, the CLI, the emulator and its test
bed) does its audio work as many small numpy operations per 20 ms frame. A
multi-threaded BLAS only hurts there: its worker threads spin between the
products, and in the rack's test bed that spin was 42 % of the process's CPU
(one worker beside the main thread on two cores: 6.6 of 15.5 CPU seconds).
So the BLAS is held to one thread here, before anything imports numpy,
unless the environment already says otherwise; child processes inherit it.
"""

import os

for _variable in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
del _variable

__version__ = "0.1.0"
