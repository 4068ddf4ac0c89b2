import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small models on a shared machine: more intra-op threads only add contention (MDRun also sets torch's
    thread count, so restore whatever the session had)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
