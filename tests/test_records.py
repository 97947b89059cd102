"""Self-describing model files: any MLP on MNIST, Fashion-MNIST or a user's own features, used with no other file."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import make_tiny_mnist
from nbprune import IterativePruning, SimpleNN, evaluate, load_arrays, load_data, load_pruned_model, read_record, train
from nbprune.cli import main
from nbprune.export import export_model
from nbprune.modelfile import save_model_file
from nbprune.retention import schedule

WITHOUT_NBPRUNE = ("import runpy, sys; sys.modules['nbprune'] = None; sys.argv = sys.argv[1:]; "
                   "runpy.run_path(sys.argv[0], run_name='__main__')")


def predict_in_a_fresh_interpreter(folder, *inputs) -> list[str]:
    """Return the class names the exported predict.py prints, run where nbprune cannot be imported."""
    command = [sys.executable, "-I", "-B", "-c", WITHOUT_NBPRUNE, str(folder / "predict.py"), *map(str, inputs)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return [line.rsplit(": ", 1)[1].rsplit(" (", 1)[0] for line in done.stdout.splitlines()]


@pytest.fixture(scope="module")
def fashion_root(tmp_path_factory):
    return make_tiny_mnist(tmp_path_factory.mktemp("fashion"), name="FashionMNIST")


@pytest.mark.slow
def test_a_sigmoid_network_of_three_hidden_layers_exports_as_itself(tiny_data, tmp_path):
    train_loader, val_loader, test_loader = tiny_data
    torch.manual_seed(0)
    model = SimpleNN(hidden=(300, 100, 50), activation="sigmoid")
    train(model, train_loader, test_loader, num_epochs=3, logdir=tmp_path / "run", val_loader=val_loader,
          progress=False)
    model_file = tmp_path / "run" / "best_model.pth"
    record = read_record(model_file)
    assert (record.hidden, record.activation, record.spec.dataset) == ((300, 100, 50), "sigmoid", "MNIST")

    folder = export_model(model_file, tmp_path / "export", onnx=False)
    pixels = (tiny_data.to_pixels(test_loader.dataset.data) * 255).round().to(torch.uint8)
    np.save(tmp_path / "test.npy", pixels.numpy())
    exported = predict_in_a_fresh_interpreter(folder, tmp_path / "test.npy")
    labels = [str(int(label)) for label in test_loader.dataset.targets]
    exported_accuracy = 100 * np.mean([a == b for a, b in zip(exported, labels)])
    library_accuracy = evaluate(SimpleNN.from_file(model_file), train_loader, test_loader)["Test_Accuracy"]
    assert exported_accuracy == pytest.approx(library_accuracy)
    assert library_accuracy == pytest.approx(evaluate(model, train_loader, test_loader)["Test_Accuracy"])
    assert 'ACTIVATION = "sigmoid"' in (folder / "model.py").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["MNIST", "FashionMNIST"])
def test_evaluate_and_export_need_no_flags_for_a_file_nbprune_wrote(dataset, tiny_root, fashion_root, tmp_path,
                                                                    capsys):
    root = tiny_root if dataset == "MNIST" else fashion_root
    data = load_data(root, name=dataset, val_size=100, download=False)
    torch.manual_seed(1)
    model = train(SimpleNN(hidden=(32, 16, 8), activation="sigmoid"), data.train_loader, data.test_loader,
                  num_epochs=2, val_loader=data.val_loader, progress=False)
    save_model_file(model, tmp_path / "best_model.pth", iteration=4, criterion="taylor")
    library = evaluate(model, data.train_loader, data.test_loader)

    assert main(["evaluate", str(tmp_path / "best_model.pth"), "--data-root", str(root)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["dataset"] == dataset and printed["hidden"] == [32, 16, 8]
    assert printed["Test_Accuracy"] == pytest.approx(library["Test_Accuracy"])

    assert main(["export", str(tmp_path / "best_model.pth"), str(tmp_path / "out"), "--no-onnx"]) == 0
    readme = (tmp_path / "out" / "README.md").read_text()
    pixels = (data.to_pixels(data.test_loader.dataset.data[:20]) * 255).round().to(torch.uint8)
    np.save(tmp_path / "some.npy", pixels.numpy())
    names = predict_in_a_fresh_interpreter(tmp_path / "out", tmp_path / "some.npy")
    expected = [data.classes[k] for k in model(data.test_loader.dataset.data[:20]).argmax(1).tolist()]
    assert names == expected
    if dataset == "FashionMNIST":
        assert "T-shirt/top" in readme and "digit" not in readme
    else:
        assert "MNIST images" in readme


@pytest.mark.slow
def test_a_users_own_features_go_through_the_whole_workflow(tmp_path):
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 12, generator=generator) * 3
    labels = torch.randint(0, 4, (900,), generator=generator)
    features = (centres[labels] + torch.randn(900, 12, generator=generator)) * 50 + 100  # far from standardised
    data = load_arrays(train=(features[:700], labels[:700]), test=(features[700:], labels[700:]), val_size=100,
                     classes=["north", "east", "south", "west"])
    steps = schedule(hidden=(24, 12), q=0.7)[:3]
    experiment = IterativePruning(data.train_loader, data.test_loader, val_loader=data.val_loader, num_epochs=15,
                                  progress=False)
    torch.manual_seed(0)
    records = experiment.run(SimpleNN(hidden=(24, 12), in_features=12, num_classes=4), steps, tmp_path / "ip")
    assert records[-1]["Test_Accuracy"] > 70
    model_file = tmp_path / "ip" / "2" / "prune_w_retrain" / "best_model.pth"
    record = read_record(model_file)
    assert record.spec.dataset == "custom" and record.spec.classes == ("north", "east", "south", "west")
    assert record.spec.image_shape is None and len(record.spec.mean) == 12

    folder = export_model(model_file, tmp_path / "export", onnx=False)
    np.save(tmp_path / "rows.npy", features[700:750].numpy())
    model = load_pruned_model(SimpleNN(hidden=(24, 12), in_features=12, num_classes=4), model_file)
    expected = [record.spec.classes[k] for k in model(data.test_loader.dataset.data[:50]).argmax(1).tolist()]
    assert predict_in_a_fresh_interpreter(folder, tmp_path / "rows.npy") == expected
