import pytest
import torch

from skipanalysis import hardware
from skipanalysis.measure import machines as hwfiles


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


def test_xla_on_the_cpu_backend_is_never_labelled_a_tpu():

    base = {"cpu_model": "AMD EPYC", "torch_threads": 2, "platform": "Linux-6.1-x86_64"}
    on_cpu = {**base, "device": "xla:0", "xla_backend": "CPU"}
    on_tpu = {**base, "device": "xla:0", "xla_backend": "TPU"}
    assert hardware.device_label(on_cpu) == "xla (XLA on CPU: AMD EPYC, not a TPU)"
    assert hardware.device_label(on_tpu) == "xla (TPU)"
    assert hwfiles.machine_id(on_cpu) == "xla-on-cpu-amd-epyc" and hwfiles.machine_id(
        on_tpu) == "xla-tpu"
    assert hwfiles.machine_id({**base, "device": "cpu"}) == "cpu-amd-epyc-2t"
    paths = hwfiles.code_paths("xla", on_cpu)
    assert ("XLA on CPU" in paths and "never a TPU" in paths
            and "torch_xla.utils.checkpoint" in paths)
    assert "torch.cuda.synchronize" in hwfiles.code_paths("cuda")
    assert "no device synchronisation" in hwfiles.code_paths("cpu")

