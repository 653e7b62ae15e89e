import json

import numpy as np
import torch
from PIL import Image

from ml.qc.__main__ import main


def test_cli_trains_then_scores_one_json_line_per_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    folder = tmp_path / "accepted"
    folder.mkdir()
    for i in range(12):
        ramp = np.linspace(0, 255, 40)[None, :] * np.ones((30, 1))
        image = np.clip(ramp + rng.normal(0, 5, ramp.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    model_path = tmp_path / "qc.pt"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main(
            [
                "train",
                str(folder),
                "--output",
                str(model_path),
                "--epochs",
                "1",
                "--image-size",
                "32",
            ]
        )
    finally:
        torch.set_num_threads(before)
    assert rc == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["n_train"] + info["n_calibration"], info["image_size"]) == (12, 32)

    files = [folder / "00.png", folder / "01.png"]
    assert main(["score", "--model", str(model_path), *map(str, files)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["file"] for line in lines] == [str(f) for f in files]
    assert all(set(line) >= {"p_inverted", "ood_score", "flags"} for line in lines)
