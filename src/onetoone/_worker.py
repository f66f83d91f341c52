"""The worker process of a job the server runs out of its own process
(:data:`onetoone.jobs.IN_WORKER`): ``python -m onetoone._worker FOLDER STEP ARGS``."""

import sys

from onetoone.jobs import worker_main

if __name__ == "__main__":
    sys.exit(worker_main(sys.argv[1:]))
