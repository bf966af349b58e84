"""``--cpu-choices``: the settings measured, and their table against TensorFlow's float32 default."""

from keras_notes_benchmarks import cpu_choices


def test_cpu_choices_table_compares_each_setting_with_tensorflows_float32_default():
    rows = [{"precision": precision, "inter": inter, "intra": intra, "workload": workload,
             "images_per_second": (100.0 if workload == "frozen" else 20.0) * (1.5 if inter == 2 else 1.0)}
            for precision, inter, intra, workload in cpu_choices.cpu_settings()]
    assert len(rows) == 2 * (len(cpu_choices.PRECISION_CHOICES) + len(cpu_choices.THREAD_CHOICES) - 1)
    lines = cpu_choices.format_cpu_choices(rows).splitlines()
    assert lines[2].split() == ["float32", "0", "0", "100.0", "1.00", "20.0", "1.00"]
    assert ["float32", "2", "1", "150.0", "1.50", "30.0", "1.50"] in [line.split() for line in lines]


def test_a_step_measurement_trains_in_mixed_bfloat16():
    assert cpu_choices.step_rate("mobilenet", 32, 4, 1, precision="mixed_bfloat16", workload="full") > 0
