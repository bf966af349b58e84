"""``--cpu-choices``: the settings measured, and their table against TensorFlow's float32 default."""

import pytest

from keras_notes_benchmarks import cpu_choices


def test_cpu_choices_table_compares_each_setting_with_tensorflows_float32_default():
    rows = [{"precision": precision, "inter": inter, "intra": intra, "workload": workload,
             "images_per_second": (100.0 if workload == "frozen" else 20.0) * (1.5 if inter == 2 else 1.0)}
            for precision, inter, intra, workload in cpu_choices.cpu_settings()]
    # 3 precisions + 3 non-default thread settings (TensorFlow's default counted once), each on 2 workloads.
    assert len(rows) == 12
    lines = cpu_choices.format_cpu_choices(rows).splitlines()
    assert lines[2].split() == ["float32", "0", "0", "100.0", "1.00", "20.0", "1.00"]
    assert ["float32", "2", "1", "150.0", "1.50", "30.0", "1.50"] in [line.split() for line in lines]


@pytest.mark.slow
def test_a_step_measurement_trains_in_mixed_bfloat16(monkeypatch):
    import keras

    from keras_notes.finetune import models

    built = []
    original = models.build_model
    monkeypatch.setattr(models, "build_model", lambda *args, **kwargs: built.append(original(*args, **kwargs))
                        or built[-1])
    rate = cpu_choices.step_rate("mobilenet", 32, 4, 1, precision="mixed_bfloat16", workload="full")
    model = built[0]
    assert rate > 0
    # The base computes in bfloat16 (the head's softmax stays float32 on purpose, models.py).
    assert model.get_layer("base").get_layer("conv1").compute_dtype == "bfloat16"
    assert int(model.optimizer.iterations) == 3  # 2 untimed steps + the 1 timed one
    assert keras.mixed_precision.dtype_policy().name == "float32"  # the policy is restored
