"""Capacity planning arithmetic on measurements, and measurements from run reports."""

from __future__ import annotations

import math

import pytest

from bwc.capacity import Measurement, measurements_from_reports, plan_nodes

CPU = Measurement("cpu", speech_x_per_unit=0.5, scoring_x_per_core=100.0, models="m", hardware="h", source="s")
GPU = Measurement("cuda", speech_x_per_unit=80.0, scoring_x_per_core=100.0, models="m", hardware="h", source="s")


def _report(device: str, audio_hours: float, speech_s: float, scoring_s: float, units: float) -> dict:
    return {
        "audio_hours": audio_hours,
        "stage_s": {"decode_s": speech_s / 2, "asr_s": speech_s / 2, "scoring_s": scoring_s},
        "resources": {
            "speech_device": device,
            "cpus_per_speech_worker": units if device == "cpu" else 1,
            "gpus_per_speech_worker": units if device == "cuda" else 0.0,
            "cpus_per_scoring_worker": 1,
            "whisper": "small",
            "diarization": "community-1",
        },
    }


def test_nodes_scale_with_footage_and_respect_the_window() -> None:
    small = plan_nodes(40, CPU, window_hours=8, headroom=1.0, cores_per_node=16)
    assert small.speech_units == pytest.approx(40 / 8 / 0.5)  # 10 cores keep up with 5 audio hours per hour
    assert small.speech_nodes == 1 and small.language_nodes == 0
    double = plan_nodes(80, CPU, window_hours=8, headroom=1.0, cores_per_node=16)
    assert double.speech_units == pytest.approx(2 * small.speech_units)
    assert double.speech_nodes == 2  # 20 cores + a little for language: two 16-core nodes
    shorter = plan_nodes(40, CPU, window_hours=4, headroom=1.25, cores_per_node=16)
    assert shorter.speech_units == pytest.approx(small.speech_units * 2 * 1.25)


def test_gpu_plans_speech_on_gpu_nodes_and_language_on_cpu_nodes() -> None:
    plan = plan_nodes(800, GPU, window_hours=8, headroom=1.0, cores_per_node=16, gpus_per_node=2)
    assert plan.speech_units == pytest.approx(800 / 8 / 80)
    assert plan.speech_nodes == 1 and plan.language_nodes == 1
    with pytest.raises(ValueError):
        plan_nodes(10, GPU, window_hours=0)


def test_measurements_from_reports_count_the_units_actors_held() -> None:
    reports = [
        _report("cpu", audio_hours=1.0, speech_s=1800.0, scoring_s=36.0, units=1),
        _report("cpu", audio_hours=1.0, speech_s=900.0, scoring_s=36.0, units=2),  # 2 cores per actor
        _report("cuda", audio_hours=10.0, speech_s=900.0, scoring_s=360.0, units=0.5),
        {"audio_hours": 0.0, "stage_s": {}, "resources": {}},  # a night with nothing new: not a measurement
        _report("cpu", audio_hours=5.0, speech_s=1.0, scoring_s=1.0, units=1) | {"kind": "rescore"},
    ]
    cpu, gpu = measurements_from_reports(reports, source="store")
    assert (cpu.device, gpu.device) == ("cpu", "cuda")
    assert cpu.speech_x_per_unit == pytest.approx(7200 / (1800 + 900 * 2))  # audio seconds per core-second
    assert cpu.scoring_x_per_core == pytest.approx(7200 / 72)
    assert gpu.speech_x_per_unit == pytest.approx(36000 / (900 * 0.5))  # per whole GPU: 80x realtime
    assert not math.isinf(gpu.scoring_x_per_core)


def test_bwc_plan_uses_the_benchmarks_measurements_and_names_them() -> None:
    import subprocess
    import sys

    from bwc.capacity import load_measurements

    devices = {m.device: m for m in load_measurements()}
    assert set(devices) == {"cpu", "cuda"}, "benchmarks/capacity.json holds a CPU and a GPU measurement"
    planned = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "plan", "--hours-per-night", "120", "--cores-per-node", "32"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    expected = plan_nodes(120, devices["cuda"], cores_per_node=32)
    assert f"GPU: {expected.speech_nodes} node(s)" in planned.stdout
    assert devices["cpu"].source in planned.stdout and devices["cuda"].source in planned.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "bwc.cli", "plan", "--hours-per-night", "10", "--headroom", "0.5"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2 and "headroom" in refused.stderr
