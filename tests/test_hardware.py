import pytest
import torch

from skipanalysis import hardware


def test_auto_picks_a_present_device():
    dev = hardware.select_device("auto")
    assert dev.type == hardware.available_devices()[0] or dev.type == "xla"


def test_cpu_always_works():
    assert hardware.select_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_absent_device_is_a_clear_error():
    with pytest.raises(ValueError, match=r"device='cuda'.*not present.*present: .*cpu"):
        hardware.select_device("cuda")


def test_unknown_device_name():
    with pytest.raises(ValueError, match=r"device='tpu9' is not allowed; choose one of auto, cpu"):
        hardware.select_device("tpu9")


def test_fingerprint_fields():
    fp = hardware.fingerprint("cpu")
    for key in ("cpu_model", "cpu_count", "torch", "python", "devices_present", "device", "date"):
        assert key in fp
    assert "cpu" in fp["devices_present"]
    assert hardware.device_label(fp).startswith("cpu (")
