import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

# One interpreter (torch is imported once): what `import ml.qc` loads, then what the rest loads.
PROBE = """
import sys
import ml, ml.qc
print("torch_after_ml_qc", "torch" in sys.modules)
import ml.qc.model, ml.qc.datasets, ml.qc.scores, ml.qc.calibration, ml.qc.__main__
ml.qc.train_qc
print("torch_after_model", "torch" in sys.modules)
print("top_level", *sorted({m.split(".")[0] for m in sys.modules}))
"""


def test_qc_imports_no_django_or_app_and_torch_only_on_use():
    out = subprocess.run(  # noqa: S603 - our own interpreter and a fixed probe
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "torch_after_ml_qc False"
    assert out[1] == "torch_after_model True"
    loaded = set(out[2].split()[1:])
    forbidden = {"django", "rest_framework", "consent", "annotate", "games", "accounts", "tessera"}
    assert loaded & forbidden == set()
