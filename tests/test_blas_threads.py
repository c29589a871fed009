"""Every process of the project holds numpy's BLAS to one thread (see
``daemon1521/__init__.py``): its workers only spin between the small
per-frame products, which cost the rack's test bed 42 % of its CPU."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import os
import daemon1521.dsp.dtmf  # imports numpy after the package
import numpy as np
np.ones((600, 600)) @ np.ones((600, 600))  # big enough for BLAS to use its threads
print(os.environ.get("OPENBLAS_NUM_THREADS"), len(os.listdir("/proc/self/task")))
"""


def _probe(env: dict[str, str]) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], int(out[1])


def _env_without_blas_settings() -> dict[str, str]:
    return {
        k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }


def test_the_package_holds_blas_to_one_thread() -> None:
    setting, threads = _probe(_env_without_blas_settings())
    assert setting == "1"
    assert threads == 1


def test_an_operator_setting_is_kept() -> None:
    setting, _ = _probe({**_env_without_blas_settings(), "OPENBLAS_NUM_THREADS": "2"})
    assert setting == "2"
