"""Shared pytest configuration: hypothesis profiles and clean skips for optional backends.

Profiles (select with the environment variable ``HYPOTHESIS_PROFILE``, default ``ci``):

``ci``   derandomized (the same examples on every run, so CI is reproducible), 100 examples,
         no deadline (the 2-core CI machine is shared; timing is not what we test).
``dev``  random search with 500 examples, for hunting counterexamples locally.

Markers (declared in pyproject.toml): ``torch`` tests are skipped when PyTorch is not
installed; ``gpu`` tests are skipped without a CUDA device.
"""

from __future__ import annotations

import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=500, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _has_cuda() -> bool:
    if not HAS_TORCH:
        return False
    import torch

    return bool(torch.cuda.is_available())


def pytest_collection_modifyitems(config, items):
    """Skip (never fail) tests whose backend is missing: ``torch`` and ``gpu`` markers."""
    no_torch = pytest.mark.skip(reason="PyTorch is not installed")
    no_gpu = pytest.mark.skip(reason="no CUDA device")
    cuda = None  # importing torch is slow: only ask when a gpu test was collected
    for item in items:
        if "torch" in item.keywords and not HAS_TORCH:
            item.add_marker(no_torch)
        if "gpu" in item.keywords:
            if cuda is None:
                cuda = _has_cuda()
            if not cuda:
                item.add_marker(no_gpu)


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread(request):
    """Real-model test modules (``test_real_*``) run torch on one thread, restored afterwards.

    Their models are tiny: on a shared 2-core CPU, intra-op threads only contend (measured
    10-20x slower with two threads under load); results do not depend on the thread count.
    Core test modules never import torch for this.
    """
    if not request.module.__name__.split(".")[-1].startswith("test_real_") or not HAS_TORCH:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
