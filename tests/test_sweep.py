"""The head sweep: seeded trials, the printed table and trials.csv, the winner's run folder, the head it trains."""

import csv
import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from finetune_images import calibrated_base_weights, make_image_folder
from keras_notes.cli import sweep as cli
from keras_notes.finetune import runio
from keras_notes.finetune.cache import feature_dataset
from keras_notes.finetune.config import FinetuneConfig
from keras_notes.finetune.data import load_splits, make_eval_dataset
from keras_notes.finetune.sweep import COLUMNS, SWEEP_FILE, TRIALS_FILE, sweep
from keras_notes.finetune.sweep_config import SweepConfig
from keras_notes.finetune.sweep_tuner import make_hypermodel
from keras_notes.report import format_value
from test_losses import numpy_smoothed_crossentropy

TRIALS = 3


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("images"), per_class=8)


@pytest.fixture(scope="module")
def base_weights(images, tmp_path_factory):
    return calibrated_base_weights(images, tmp_path_factory.mktemp("weights") / "base.weights.h5")


def _config(images, base_weights, output, **changes):
    values = dict(weights=base_weights, image_size=32, batch_size=4, epochs=2, trials=TRIALS, output=str(output),
                  verbose=0)
    return SweepConfig(images, **{**values, **changes})


@pytest.fixture(scope="module")
def swept(images, base_weights, tmp_path_factory):
    """One sweep, and the lines it said (the table among them)."""
    said = []
    result = sweep(_config(images, base_weights, tmp_path_factory.mktemp("sweep") / "out"), say=said.append)
    return result, said


def _without_seconds(rows):
    return [{key: value for key, value in row.items() if key != "seconds"} for row in rows]


@pytest.mark.slow
def test_a_seeded_sweep_gives_the_same_trials_again(swept, images, base_weights, tmp_path):
    first, _ = swept
    again = sweep(_config(images, base_weights, tmp_path / "again"), say=lambda line: None)
    assert _without_seconds(again.trials) == _without_seconds(first.trials)
    assert len({row["lr"] for row in first.trials}) == TRIALS  # the trials differ from each other
    other = sweep(_config(images, base_weights, tmp_path / "other", seed=7, trials=1), say=lambda line: None)
    assert other.trials[0]["lr"] not in {row["lr"] for row in first.trials}  # the seed draws the values


@pytest.mark.slow
def test_the_table_has_one_row_per_trial_and_the_csv_holds_what_is_printed(swept):
    result, said = swept
    table = next(line for line in said if line.startswith("trial"))
    lines = table.splitlines()[2:]  # below the header and the rule
    assert len(lines) == len(result.trials) == TRIALS
    with open(os.path.join(result.output, TRIALS_FILE), newline="", encoding="utf-8") as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == list(COLUMNS)
    for line, row in zip(lines, rows):
        printed = line.split()
        assert printed[0] == row["trial"]
        # Every number as printed is the CSV's full-precision value, rounded for display.
        for column, cell in zip(COLUMNS[1:], printed[1:]):
            value = float(row[column])
            assert cell == format_value(int(value) if column in ("hidden_units", "epoch") else value), column
    # Best first: by val_accuracy, then by val_loss.
    keys = [(-float(row["val_accuracy"]), float(row["val_loss"])) for row in rows]
    assert keys == sorted(keys)


@pytest.mark.slow
def test_the_winner_is_the_best_row_and_is_retrained_as_a_run(swept, images):
    result, _ = swept
    best_row = result.trials[0]
    recorded = runio.read_json(os.path.join(result.output, SWEEP_FILE))
    chosen = ("lr", "dropout", "hidden_units", "label_smoothing")
    assert recorded["winner"]["trial"] == best_row["trial"] == result.winner["trial"]
    assert {name: recorded["winner"][name] for name in chosen} == {name: best_row[name] for name in chosen}
    assert recorded["search_space"]["hidden_units"] == [0, 128, 256, 512]
    assert len(recorded["trials"]) == TRIALS

    run_dir = os.path.join(result.output, "best")
    assert result.best.run_dir == run_dir
    config = FinetuneConfig.from_dict(runio.read_json(os.path.join(run_dir, runio.CONFIG_FILE)))
    assert {name: getattr(config, name) for name in chosen} == {name: best_row[name] for name in chosen}
    for name in (runio.EVALUATION_FILE, runio.CONFUSION_FILE, runio.CURVES_FILE):
        assert os.path.isfile(os.path.join(run_dir, name)), name

    model = keras.saving.load_model(os.path.join(run_dir, runio.MODEL_FILE))
    hidden = [layer for layer in model.layers if layer.name == "hidden"]
    assert [layer.units for layer in hidden] == ([best_row["hidden_units"]] if best_row["hidden_units"] else [])
    val = load_splits(images, val_split=0.2, seed=1337).val
    pixels = np.concatenate([batch[0].numpy() for batch in make_eval_dataset(val, 32, 8)])  # raw 0-255
    assert pixels.max() > 1.0
    probabilities = model.predict(pixels, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == np.asarray(val.labels)))
    assert accuracy == pytest.approx(runio.read_json(os.path.join(run_dir, runio.EVALUATION_FILE))["accuracy"])


def _fixed(**values):
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    for name, value in values.items():
        hp.Fixed(name, value)
    return hp


def test_a_trial_builds_the_head_it_names_and_trains_on_the_smoothed_loss():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(24, 1024)).astype(np.float32)
    labels = np.arange(24) % 3
    config = SweepConfig("imgs", batch_size=4, epochs=1)
    hypermodel = make_hypermodel(config, 3, features, labels)
    model = hypermodel.build(_fixed(lr=1e-3, dropout=0.1, hidden_units=64, label_smoothing=0.2))
    # hidden: 1024*64 + 64 = 65,600; predictions: 64*3 + 3 = 195.
    assert model.count_params() == (1024 * 64 + 64) + (64 * 3 + 3) == 65_795
    assert [layer.name for layer in model.layers] == ["features", "hidden", "dropout", "predictions"]
    assert model.optimizer.learning_rate.numpy() == pytest.approx(1e-3)
    plain = hypermodel.build(_fixed(lr=1e-3, dropout=0.0, hidden_units=0, label_smoothing=0.0))
    assert plain.count_params() == 1024 * 3 + 3

    hypermodel.fit(None, model, epochs=1, verbose=0, shuffle=False)
    loss = model.evaluate(features, labels, verbose=0, return_dict=True)["loss"]
    expected = numpy_smoothed_crossentropy(labels, model.predict(features, verbose=0), 0.2)
    assert loss == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(numpy_smoothed_crossentropy(labels, model.predict(features, verbose=0), 0.0))


def test_trial_batches_are_the_batches_of_the_runs_cached_phase():
    features = np.arange(40 * 2, dtype=np.float32).reshape(40, 2)
    labels = np.arange(40) % 2
    config = SweepConfig("imgs", batch_size=4, epochs=2, seed=5)
    hypermodel = make_hypermodel(config, 2, features, labels)
    seen = []

    class Recording:  # a model whose fit keeps the dataset the trial hands it
        def fit(self, dataset, *args, **kwargs):
            seen.append(dataset)

    hypermodel.fit(None, Recording(), epochs=2, verbose=0)
    # The run's phase 1 on kept outputs: seed + phase - 1 (train.run_phase).
    run = feature_dataset(features, labels, 4, training=True, seed=config.seed)
    for _ in range(2):  # the first two epochs, each reshuffled
        ours = np.concatenate([x.numpy() for x, _ in seen[0]])
        theirs = np.concatenate([x.numpy() for x, _ in run])
        np.testing.assert_array_equal(ours, theirs)
        assert ours.shape == (40, 2) and not np.array_equal(ours, features)  # shuffled, whole batches


def test_sweep_fields_shared_with_a_run_keep_its_flags_and_defaults():
    shared = {field.name: field for field in dataclasses.fields(FinetuneConfig)}
    for field in dataclasses.fields(SweepConfig):
        if field.name in shared and field.name not in ("epochs", "output", "seed", "hidden_units"):
            assert field.metadata["help"] == shared[field.name].metadata["help"], field.name
            assert field.default == shared[field.name].default, field.name
    config = cli.parse_args(["imgs", "--hidden-units", "0,32", "--trials", "5", "--lr-min", "1e-3"])
    assert config.hidden_units == (0, 32) and config.trials == 5 and config.lr_min == 1e-3
    assert json.loads(json.dumps(config.to_dict()))["hidden_units"] == [0, 32]
    run = config.finetune_config(lr=0.01, dropout=0.3, hidden_units=32, label_smoothing=0.1)
    assert run.freeze_base is True and run.epochs == 10 and run.hidden_units == 32 and run.output is None


@pytest.mark.parametrize("argv, message", [
    (["imgs", "--trials", "0"], "trials must be an integer of at least 1; received trials=0"),
    (["imgs", "--lr-min", "1e-2", "--lr-max", "1e-3"], "received lr_min=0.01, lr_max=0.001"),
    (["imgs", "--lr-min", "0"], "received lr_min=0.0"),
    (["imgs", "--smoothing-min", "-0.1"], "received smoothing_min=-0.1"),
    (["imgs", "--smoothing-max", "1"], "received smoothing_max=1.0"),
    (["imgs", "--dropout-min", "0.4", "--dropout-max", "0.2"], "received dropout_min=0.4, dropout_max=0.2"),
    (["imgs", "--hidden-units", "0,-5"], "received hidden_units=(0, -5)"),
    (["imgs", "--epochs", "0"], "received epochs=0"),
    (["/no/such/folder"], "image folder not found: '/no/such/folder'"),
])
def test_bad_values_exit_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_image_folder(tmp_path / "imgs", per_class=2)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_the_command_line_is_read_without_tensorflow_or_kerastuner():
    code = ("import sys; from keras_notes.cli import sweep; sweep.parse_args(['imgs', '--trials', '3']); "
            "print(sorted(name for name in ('tensorflow', 'keras', 'keras_tuner') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_a_sweep_refuses_a_folder_that_holds_files(images, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "trials.csv").write_text("earlier sweep")
    assert cli.main([images, "--weights", "none", "--image-size", "32", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "sweep folder already exists and is not empty" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("argv, message", [
    (["imgs", "--hidden-units", "0,x"], "expected comma-separated integers; received '0,x'"),
    (["imgs", "--tuner", "grid"], "invalid choice: 'grid'"),
])
def test_flags_argparse_cannot_read_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow
def test_the_winners_run_reads_the_sweeps_pass_from_the_kept_cache(images, base_weights, tmp_path, monkeypatch):
    from keras_notes.finetune import cache

    sizes = []
    original = cache.extract_features

    def counting(extractor, dataset, count, paths=None):
        sizes.append(count)
        return original(extractor, dataset, count, paths)

    monkeypatch.setattr(cache, "extract_features", counting)  # the PNGs of this folder need no judging
    result = sweep(_config(images, base_weights, tmp_path / "out", trials=1), say=lambda line: None)
    assert sizes == [24]  # the sweep's one pass; the winner's run read every output from the kept cache
    uncached = sweep(_config(images, base_weights, tmp_path / "none", trials=1, kept_cache=False),
                     say=lambda line: None)
    assert result.best.evaluation == uncached.best.evaluation


def test_a_trial_does_not_depend_on_the_trials_before_it():
    """Heads are reused across trials (one traced model per width): a trial must start afresh."""
    rng = np.random.default_rng(1)
    features = rng.normal(size=(32, 16)).astype(np.float32)
    labels = np.arange(32) % 3
    config = SweepConfig("imgs", batch_size=4, epochs=3)
    settings = dict(lr=3e-3, dropout=0.3, hidden_units=8, label_smoothing=0.1)

    def history(hypermodel, seed, **values):
        hypermodel.trial_seed = seed
        model = hypermodel.build(_fixed(**values))
        return hypermodel.fit(None, model, epochs=3, verbose=0, shuffle=False,
                              validation_data=feature_dataset(features, labels, 4)).history

    alone = history(make_hypermodel(config, 3, features, labels), 7, **settings)
    reused = make_hypermodel(config, 3, features, labels)
    history(reused, 3, lr=1e-2, dropout=0.0, hidden_units=8, label_smoothing=0.0)  # another trial first
    after = history(reused, 7, **settings)
    assert after == alone
    assert history(reused, 8, **settings) != alone  # the seed matters: the check can fail
